"""The append-only audit log of security- and moderation-relevant actions."""

from __future__ import annotations

import json
from collections.abc import Mapping

from livecore.store.db import Database

JsonValue = str | int | float | bool | None


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        action: str,
        target_type: str,
        target_id: str | int,
        *,
        actor_id: int | None = None,
        details: Mapping[str, JsonValue] | None = None,
        client_ip: str = "",
    ) -> None:
        await self._db.pool.execute(
            "INSERT INTO audit_log (actor_id, action, target_type, target_id, details, client_ip)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
            actor_id,
            action,
            target_type,
            str(target_id),
            json.dumps(dict(details or {})),
            client_ip,
        )

    async def actions_for(self, target_type: str, target_id: str | int) -> list[str]:
        rows = await self._db.pool.fetch(
            "SELECT action FROM audit_log WHERE target_type = $1 AND target_id = $2 ORDER BY id",
            target_type,
            str(target_id),
        )
        return [r["action"] for r in rows]
