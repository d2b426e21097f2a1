"""Roles: admins grant and revoke creator and admin, audited, never leaving no admin;
creator sign-up closed by a setting (requests approved or declined); the user search."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from livecore.config import Config
from livecore.store import Database
from tests.admin.accounts import admin, audit_actions, set_role, suspend
from tests.chat.conftest import user
from tests.conftest import Client, MakeClient, bearer, register


async def _me(client: Client, token: str) -> dict[str, Any]:
    resp = await client.get("/api/v1/me", headers=bearer(token))
    assert resp.status == 200
    me: dict[str, Any] = (await resp.json())["user"]
    return me


async def test_admins_grant_and_revoke_roles_and_it_is_audited(
    client: Client, db: Database
) -> None:
    ann = await user(client, "ann")
    root = await admin(client, db)
    ann_id = ann["user"]["id"]
    assert (await _me(client, ann["token"]))["role"] == "viewer"
    status, body = await set_role(client, root["token"], ann_id, "creator")
    assert (status, body) == (200, {"role": "creator", "before": "viewer"})
    # Her session stays, and reads the new role at once (no cached old role).
    assert (await _me(client, ann["token"]))["role"] == "creator"
    resp = await client.post(
        "/api/v1/streams", json={"slug": "ann-room"}, headers=bearer(ann["token"])
    )
    assert resp.status == 201
    assert (await set_role(client, root["token"], ann_id, "admin"))[0] == 200
    assert (await _me(client, ann["token"]))["role"] == "admin"
    # Now an admin herself, she revokes root's admin role, then her own is the last.
    assert (await set_role(client, ann["token"], root["user"]["id"], "viewer"))[0] == 200
    status, body = await set_role(client, ann["token"], ann_id, "creator")
    assert status == 409 and "last admin" in body["error"]["message"]
    assert (await _me(client, ann["token"]))["role"] == "admin"
    # Setting the role a user has already changes (and audits) nothing.
    assert await set_role(client, ann["token"], ann_id, "admin") == (
        200, {"role": "admin", "before": "admin"},
    )  # fmt: skip
    rows = await db.pool.fetch(
        "SELECT actor_id, details FROM audit_log WHERE action = 'user.role_set'"
        " AND target_id = $1 ORDER BY id",
        str(ann_id),
    )
    assert [r["actor_id"] for r in rows] == [root["user"]["id"]] * 2
    assert '"role": "creator"' in rows[0]["details"] and '"before": "viewer"' in rows[0]["details"]
    assert (await audit_actions(db, root["user"]["id"]))[-1] == "user.role_set"


async def test_role_changes_are_refused_to_non_admins_and_for_unknown_roles(
    client: Client, db: Database
) -> None:
    ann = await user(client, "ann")
    bob = await user(client, "bob", creator=True)
    root = await admin(client, db)
    # A forged change: a creator making herself (or anyone) admin.
    for token, target in ((bob["token"], bob["user"]["id"]), (ann["token"], ann["user"]["id"])):
        status, body = await set_role(client, token, target, "admin")
        assert status == 403, body
    resp = await client.put(f"/api/v1/admin/users/{ann['user']['id']}/role", json={"role": "admin"})
    assert resp.status == 401
    for role in ("superuser", "Admin", "", None, 1, ["admin"]):
        status, body = await set_role(client, root["token"], ann["user"]["id"], role)
        assert status == 422, role
        assert "role" in body["error"]["fields"]
    assert (await set_role(client, root["token"], 999999, "creator"))[0] == 404
    assert (await set_role(client, root["token"], "x", "creator"))[0] == 404  # type: ignore[arg-type]
    assert (await _me(client, ann["token"]))["role"] == "viewer"
    assert (await _me(client, bob["token"]))["role"] == "creator"
    assert "user.role_set" not in await audit_actions(db, ann["user"]["id"])


async def test_closed_creator_signup_makes_a_request_an_admin_decides(
    make_client: MakeClient, config: Config, db: Database
) -> None:
    client = await make_client(auth=replace(config.auth, open_creator_signup=False))
    cara = await register(client, "cara@example.com", creator=True, display_name="Cara")
    dora = await register(client, "dora@example.com", creator=True, display_name="Dora")
    client.session.cookie_jar.clear()
    root = await admin(client, db)
    assert cara["user"]["role"] == "viewer"
    resp = await client.post(
        "/api/v1/streams", json={"slug": "cara-room"}, headers=bearer(cara["token"])
    )
    assert resp.status == 403
    standing = await (await client.get("/api/v1/me/standing", headers=bearer(cara["token"]))).json()
    assert standing["suspension"] is None
    assert standing["creator_request"]["state"] == "pending"
    # Only admins see and decide the requests.
    resp = await client.get("/api/v1/admin/creator-requests", headers=bearer(cara["token"]))
    assert resp.status == 403
    resp = await client.get(
        "/api/v1/admin/creator-requests?state=pending", headers=bearer(root["token"])
    )
    requests = (await resp.json())["requests"]
    assert [(r["user"]["display_name"], r["state"]) for r in requests] == [
        ("Cara", "pending"), ("Dora", "pending"),
    ]  # fmt: skip
    cara_request, dora_request = (r["id"] for r in requests)
    url = "/api/v1/admin/creator-requests/{}/{}"
    resp = await client.post(url.format(cara_request, "approve"), headers=bearer(cara["token"]))
    assert resp.status == 403
    resp = await client.post(url.format(cara_request, "approve"), headers=bearer(root["token"]))
    assert resp.status == 200
    assert (await resp.json())["request"]["state"] == "approved"
    resp = await client.post(url.format(dora_request, "decline"), headers=bearer(root["token"]))
    assert (await resp.json())["request"]["state"] == "declined"
    # Decided once: deciding again, or an unknown request, is 404.
    for request_id in (cara_request, dora_request, 999999):
        resp = await client.post(url.format(request_id, "approve"), headers=bearer(root["token"]))
        assert resp.status == 404
    # Cara is a creator at once, with the session she has; Dora stays a viewer.
    assert (await _me(client, cara["token"]))["role"] == "creator"
    resp = await client.post(
        "/api/v1/streams", json={"slug": "cara-room"}, headers=bearer(cara["token"])
    )
    assert resp.status == 201
    assert (await _me(client, dora["token"]))["role"] == "viewer"
    standing = await (await client.get("/api/v1/me/standing", headers=bearer(dora["token"]))).json()
    assert standing["creator_request"]["state"] == "declined"
    assert (await audit_actions(db, cara["user"]["id"]))[-1] == "user.creator_request_approved"
    assert (await audit_actions(db, dora["user"]["id"]))[-1] == "user.creator_request_declined"
    resp = await client.get(
        "/api/v1/admin/creator-requests?state=open", headers=bearer(root["token"])
    )
    assert resp.status == 422


async def test_open_creator_signup_is_the_default(client: Client) -> None:
    cara = await register(client, "cara@example.com", creator=True, display_name="Cara")
    assert cara["user"]["role"] == "creator"
    standing = await (await client.get("/api/v1/me/standing", headers=bearer(cara["token"]))).json()
    assert standing == {"suspension": None, "creator_request": None}


async def test_admins_search_users_by_email_or_name(client: Client, db: Database) -> None:
    ann = await user(client, "ann", creator=True)
    await user(client, "anna_b")
    await user(client, "bob")
    root = await admin(client, db)
    await client.post("/api/v1/streams", json={"slug": "ann-room"}, headers=bearer(ann["token"]))
    await suspend(client, root["token"], ann["user"]["id"], "Spam")

    async def search(q: str, token: str = root["token"]) -> tuple[int, Any]:
        resp = await client.get("/api/v1/admin/users", params={"q": q}, headers=bearer(token))
        return resp.status, await resp.json()

    status, body = await search("ANN")
    assert status == 200
    found = {u["display_name"]: u for u in body["users"]}
    assert set(found) == {"ann", "anna_b"}
    assert found["ann"]["role"] == "creator"
    assert found["ann"]["stream_count"] == 1
    assert found["ann"]["suspension"]["reason"] == "Spam"
    assert found["ann"]["suspension"]["until"] is None
    assert found["anna_b"]["suspension"] is None
    assert found["anna_b"]["stream_count"] == 0
    # By e-mail; LIKE's wildcards are taken literally.
    assert [u["email"] for u in (await search("bob@example"))[1]["users"]] == ["bob@example.com"]
    assert [u["display_name"] for u in (await search("a_b"))[1]["users"]] == ["anna_b"]
    assert (await search("%"))[1]["users"] == []
    assert len((await search(""))[1]["users"]) == 4
    bob = await user(client, "bobby")
    assert (await search("ann", bob["token"]))[0] == 403


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client: Client, db: Database
) -> None:
    root = await admin(client, db)
    ann = await admin(client, db, "ann")
    for _ in range(5):
        answers = await asyncio.gather(
            set_role(client, root["token"], ann["user"]["id"], "viewer"),
            set_role(client, ann["token"], root["user"]["id"], "viewer"),
        )
        statuses = sorted(status for status, _ in answers)
        # One wins; the other finds itself the last admin (409) or, when it asked after
        # losing its own role, no admin any more (403).
        assert statuses in ([200, 403], [200, 409]), answers
        admins = await db.pool.fetch("SELECT id FROM users WHERE role = 'admin'")
        assert len(admins) == 1
        await db.pool.execute("UPDATE users SET role = 'admin' WHERE id = ANY($1::bigint[])",
                              [root["user"]["id"], ann["user"]["id"]])  # fmt: skip
