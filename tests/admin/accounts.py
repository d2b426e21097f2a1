"""Helpers of the account tests: admins, suspensions, role changes and logins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from livecore.store import Database
from tests.chat.conftest import user
from tests.conftest import PASSWORD, Client, bearer


async def admin(client: Client, db: Database, name: str = "root") -> dict[str, Any]:
    """A new admin account (registered, then made admin in the database: the first admin
    of a deployment is made with the CLI)."""
    body = await user(client, name)
    await db.pool.execute("UPDATE users SET role = 'admin' WHERE id = $1", body["user"]["id"])
    return body


async def suspend(
    client: Client, admin_token: str, user_id: int, reason: str, until: datetime | None = None
) -> tuple[int, dict[str, Any]]:
    payload: dict[str, Any] = {"reason": reason}
    if until is not None:
        payload["until"] = until.isoformat()
    resp = await client.post(
        f"/api/v1/admin/users/{user_id}/suspension", json=payload, headers=bearer(admin_token)
    )
    return resp.status, await resp.json()


async def set_role(
    client: Client, token: str, user_id: int, role: object
) -> tuple[int, dict[str, Any]]:
    resp = await client.put(
        f"/api/v1/admin/users/{user_id}/role", json={"role": role}, headers=bearer(token)
    )
    return resp.status, await resp.json()


async def login(client: Client, name: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        "/api/v1/auth/login", json={"email": f"{name}@example.com", "password": PASSWORD}
    )
    body: dict[str, Any] = await resp.json()
    client.session.cookie_jar.clear()
    return resp.status, body


async def audit_actions(db: Database, user_id: int) -> list[str]:
    rows = await db.pool.fetch(
        "SELECT action FROM audit_log WHERE target_type = 'user' AND target_id = $1 ORDER BY id",
        str(user_id),
    )
    return [r["action"] for r in rows]
