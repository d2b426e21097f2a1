"""The people of the money tests: a creator with a stream and a fan, and an admin."""

from __future__ import annotations

from typing import Any

from livecore.store import Database
from tests.conftest import Client, bearer, register

Account = dict[str, Any]


async def creator_and_fan(
    client: Client, *, slug: str = "tipjar", creator_email: str = "creator@example.com"
) -> tuple[Account, Account]:
    """A creator with the public stream `slug`, and a fan; no session cookie is left, so each
    request says who it is."""
    creator = await register(client, creator_email, creator=True, display_name="Cara")
    resp = await client.post(
        "/api/v1/streams", json={"slug": slug}, headers=bearer(creator["token"])
    )
    assert resp.status == 201
    fan = await register(client, "fan@example.com", display_name="Fan")
    client.session.cookie_jar.clear()
    return creator, fan


async def admin_headers(client: Client, db: Database) -> dict[str, str]:
    """An admin ("root@example.com"), as Authorization headers."""
    root = await register(client, "root@example.com", display_name="Root")
    await db.pool.execute("UPDATE users SET role = 'admin' WHERE id = $1", root["user"]["id"])
    client.session.cookie_jar.clear()
    return bearer(root["token"])
