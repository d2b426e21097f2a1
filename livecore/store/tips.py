"""Tips as stored: created once per (viewer, Idempotency-Key), settled once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from livecore.store.db import Database

TipStatus = Literal["pending", "succeeded", "failed", "refunded"]
Provider = Literal["test", "stripe", "manual"]

_COLUMNS = (
    "id, stream_id, viewer_id, creator_id, amount_minor, currency, message, provider,"
    " provider_ref, idempotency_key, status, created_at"
)


@dataclass(frozen=True, slots=True)
class Tip:
    id: int
    stream_id: int
    viewer_id: int
    creator_id: int
    amount_minor: int
    currency: str
    message: str
    provider: Provider
    provider_ref: str | None
    idempotency_key: str
    status: TipStatus
    created_at: datetime


def _tip(row: asyncpg.Record) -> Tip:
    return Tip(*(row[c.strip()] for c in _COLUMNS.split(",")))


class Tips:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, stream_id: int, viewer_id: int, creator_id: int, amount_minor: int,
        currency: str, message: str, provider: Provider, idempotency_key: str,
    ) -> tuple[Tip, bool]:  # fmt: skip
        """The tip for this (viewer, key): (tip, True) when made now, (existing, False) else."""
        row = await self._db.pool.fetchrow(
            f"INSERT INTO tips (stream_id, viewer_id, creator_id, amount_minor, currency,"
            f" message, provider, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            f" ON CONFLICT (viewer_id, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
            stream_id, viewer_id, creator_id, amount_minor, currency, message, provider,
            idempotency_key,
        )  # fmt: skip
        if row is not None:
            return _tip(row), True
        existing = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM tips WHERE viewer_id = $1 AND idempotency_key = $2",
            viewer_id,
            idempotency_key,
        )
        assert existing is not None
        return _tip(existing), False

    async def settle(self, tip_id: int, provider_ref: str) -> Tip | None:
        """Mark a pending tip succeeded; None when it was settled (or failed) already."""
        row = await self._db.pool.fetchrow(
            f"UPDATE tips SET status = 'succeeded', provider_ref = $2, updated_at = now()"
            f" WHERE id = $1 AND status = 'pending' RETURNING {_COLUMNS}",
            tip_id,
            provider_ref,
        )
        return _tip(row) if row else None

    async def get(self, tip_id: int) -> Tip | None:
        row = await self._db.pool.fetchrow(f"SELECT {_COLUMNS} FROM tips WHERE id = $1", tip_id)
        return _tip(row) if row else None
