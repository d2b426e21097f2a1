"""What the admin console reads: one account with its streams, tips and money settings, the
user search's two-factor state, and the platform audit log (filters, pages, CSV export);
refusals for non-admins and bad filters."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from livecore.store import Database
from tests.admin.accounts import admin, set_role, suspend
from tests.auth.test_two_factor import turn_on
from tests.chat.conftest import user
from tests.conftest import Client, bearer, create_stream
from tests.streams.test_end_now import go_live


async def _get(client: Client, token: str, path: str) -> tuple[int, Any]:
    resp = await client.get(path, headers=bearer(token))
    if resp.content_type == "text/csv":
        return resp.status, await resp.text()
    return resp.status, await resp.json()


async def test_an_account_with_its_streams_tips_money_and_two_factor(
    client: Client, db: Database
) -> None:
    root = await admin(client, db)
    cam = await user(client, "cam", creator=True)
    fan = await user(client, "fan")
    await create_stream(client, cam["token"], "cam-room", title="Cam's room")
    resp = await client.post(
        "/api/v1/streams/cam-room/tips", json={"amount_minor": 700, "currency": "usd"},
        headers=bearer(fan["token"]) | {"Idempotency-Key": "tip-1"},
    )  # fmt: skip
    assert resp.status in (200, 201), await resp.text()
    await turn_on(client, cam["token"])
    resp = await client.put(
        f"/api/v1/admin/creators/{cam['user']['id']}/money",
        json={"platform_fee_bps": 1500}, headers=bearer(root["token"]),
    )  # fmt: skip
    assert resp.status == 200, await resp.text()

    status, body = await _get(client, root["token"], f"/api/v1/admin/users/{cam['user']['id']}")
    assert status == 200
    assert body["user"]["display_name"] == "cam" and body["user"]["role"] == "creator"
    assert body["user"]["two_factor"] is True and body["user"]["suspension"] is None
    assert [(s["slug"], s["title"], s["state"]) for s in body["streams"]] == [
        ("cam-room", "Cam's room", "offline")
    ]
    [tip] = body["tips"]
    assert (tip["amount_minor"], tip["currency"], tip["stream"]) == (700, "usd", "cam-room")
    assert tip["from"]["display_name"] == "fan" and tip["to"]["display_name"] == "cam"
    assert body["money"] == {"platform_fee_bps": 1500, "stripe_account_id": None}
    # The fan: the same tip (given), no streams, no money settings (a viewer).
    status, body = await _get(client, root["token"], f"/api/v1/admin/users/{fan['user']['id']}")
    assert [t["id"] for t in body["tips"]] == [tip["id"]]
    assert body["streams"] == [] and body["money"] is None
    assert body["user"]["two_factor"] is False
    # The search shows the two-factor state of every account it finds.
    status, body = await _get(client, root["token"], "/api/v1/admin/users?q=")
    states = {u["display_name"]: u["two_factor"] for u in body["users"]}
    assert states == {"cam": True, "fan": False, "root": False}
    assert (await _get(client, root["token"], "/api/v1/admin/users/999999"))[0] == 404
    assert (await _get(client, root["token"], "/api/v1/admin/users/x1"))[0] == 404


async def _seed(client: Client, db: Database) -> dict[str, Any]:
    """Accounts and actions the audit tests read back: registrations, a role change, a
    suspension whose reason looks like a spreadsheet formula."""
    root = await admin(client, db)
    ann = await user(client, "ann")
    bob = await user(client, "bob")
    assert (await set_role(client, root["token"], ann["user"]["id"], "creator"))[0] == 200
    status, _ = await suspend(client, root["token"], bob["user"]["id"], '=HYPERLINK("x")')
    assert status == 201
    return {"root": root, "ann": ann, "bob": bob}


async def test_the_audit_log_filtered_by_actor_action_target_and_time(
    client: Client, db: Database
) -> None:
    who = await _seed(client, db)
    token = who["root"]["token"]
    root_id, bob_id = who["root"]["user"]["id"], who["bob"]["user"]["id"]

    status, body = await _get(client, token, "/api/v1/admin/audit")
    assert status == 200 and body["next_before"] is None
    actions = [e["action"] for e in body["entries"]]
    assert actions[:2] == ["user.suspend", "user.role_set"]  # newest first
    assert actions.count("user.register") == 3

    def listed(body: Any) -> list[tuple[str, str]]:
        return [(e["action"], e["target_id"]) for e in body["entries"]]

    _, body = await _get(client, token, f"/api/v1/admin/audit?actor={root_id}")
    assert listed(body) == [("user.suspend", str(bob_id)),
                            ("user.role_set", str(who["ann"]["user"]["id"])),
                            ("user.register", str(root_id))]  # fmt: skip
    assert body["entries"][0]["actor"] == {"id": root_id, "display_name": "root"}
    assert body["entries"][0]["user_name"] == "bob"
    assert body["entries"][0]["details"]["reason"] == '=HYPERLINK("x")'
    # By part of the actor's name or e-mail, any case.
    _, by_name = await _get(client, token, "/api/v1/admin/audit?actor=ROO")
    assert listed(by_name) == listed(body)
    _, body = await _get(client, token, "/api/v1/admin/audit?action=user.suspend")
    assert listed(body) == [("user.suspend", str(bob_id))]
    _, body = await _get(client, token, "/api/v1/admin/audit?action=user.")
    assert len(body["entries"]) == 5
    _, body = await _get(client, token, "/api/v1/admin/audit?action=stream.")
    assert body["entries"] == []
    _, body = await _get(client, token, f"/api/v1/admin/audit?target=user:{bob_id}")
    assert listed(body) == [("user.suspend", str(bob_id)), ("user.register", str(bob_id))]
    # Time: everything is after an hour ago and before an hour from now.
    hour = timedelta(hours=1)
    now = datetime.now(UTC)
    span = {"from": (now - hour).isoformat(), "to": (now + hour).isoformat()}
    resp = await client.get("/api/v1/admin/audit", params=span, headers=bearer(token))
    assert len((await resp.json())["entries"]) == 5
    resp = await client.get(
        "/api/v1/admin/audit", params={"from": (now + hour).isoformat()}, headers=bearer(token)
    )
    assert (await resp.json())["entries"] == []


async def test_the_audit_log_pages_back_and_exports_csv(client: Client, db: Database) -> None:
    who = await _seed(client, db)
    token = who["root"]["token"]
    _, everything = await _get(client, token, "/api/v1/admin/audit")
    ids = [e["id"] for e in everything["entries"]]
    _, first = await _get(client, token, "/api/v1/admin/audit?limit=2")
    assert [e["id"] for e in first["entries"]] == ids[:2]
    assert first["next_before"] == ids[1]
    _, rest = await _get(client, token, f"/api/v1/admin/audit?limit=10&before={ids[1]}")
    assert [e["id"] for e in rest["entries"]] == ids[2:] and rest["next_before"] is None

    resp = await client.get("/api/v1/admin/audit?format=csv&action=user.", headers=bearer(token))
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="audit.csv"'
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0] == ["id", "at", "actor_id", "actor_name", "action", "target_type",
                       "target_id", "user_name", "details"]  # fmt: skip
    assert [int(r[0]) for r in rows[1:]] == ids
    suspended = rows[1]
    assert suspended[4:8] == ["user.suspend", "user", str(who["bob"]["user"]["id"]), "bob"]
    assert suspended[3] == "root"
    datetime.fromisoformat(suspended[1])
    # A typed reason that a spreadsheet would run is written as text (inside the JSON here);
    # a name starting with "=" gets the apostrophe.
    assert '"reason": "=HYPERLINK' in suspended[8]
    await db.pool.execute("UPDATE users SET display_name = '=cmd' WHERE id = $1",
                          who["root"]["user"]["id"])  # fmt: skip
    resp = await client.get("/api/v1/admin/audit?format=csv&limit=1", headers=bearer(token))
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[1][3] == "'=cmd"


async def test_the_console_routes_refuse_non_admins_and_bad_filters(
    client: Client, db: Database
) -> None:
    who = await _seed(client, db)
    ann, token = who["ann"], who["root"]["token"]  # ann is a creator now, not an admin
    for path in ("/api/v1/admin/audit", "/api/v1/admin/audit?format=csv",
                 f"/api/v1/admin/users/{ann['user']['id']}"):  # fmt: skip
        status, body = await _get(client, ann["token"], path)
        assert status == 403 and body["error"]["code"] == "forbidden", path
        resp = await client.get(path)
        assert resp.status == 401, path
    bad = {
        "action": "User Suspend",
        "target": "user:",
        "from": "yesterday",
        "to": "2026-01-01T00:00:00",
        "before": "-3",
        "limit": "501",
        "format": "xml",
    }
    resp = await client.get("/api/v1/admin/audit", params=bad, headers=bearer(token))
    assert resp.status == 422
    fields = (await resp.json())["error"]["fields"]
    assert set(fields) == set(bad)
    assert fields["to"] == "must carry its UTC offset"
    now = datetime.now(UTC)
    order = {"from": now.isoformat(), "to": (now - timedelta(days=1)).isoformat()}
    resp = await client.get("/api/v1/admin/audit", params=order, headers=bearer(token))
    assert resp.status == 422 and (await resp.json())["error"]["fields"] == {
        "from": "must be before to"
    }
    resp = await client.get("/api/v1/admin/audit?limit=0", headers=bearer(token))
    assert resp.status == 422


async def test_every_live_stream_with_its_viewers_and_ingest(client: Client, db: Database) -> None:
    root = await admin(client, db)
    cam = await user(client, "cam", creator=True)
    key = await create_stream(client, cam["token"], "cam-live", title="Cam live")
    await create_stream(client, cam["token"], "cam-quiet")
    status, body = await _get(client, root["token"], "/api/v1/admin/live")
    assert (status, body) == (200, {"streams": []})
    pub = await go_live(client, "cam-live", key)
    try:
        status, body = await _get(client, root["token"], "/api/v1/admin/live")
        [live] = body["streams"]
        assert (live["slug"], live["title"], live["state"]) == ("cam-live", "Cam live", "live")
        assert live["owner"]["display_name"] == "cam" and live["viewers"] == 0
        # The same figures as the stream's health route, in the one answer.
        health = await _get(client, root["token"], "/api/v1/streams/cam-live/health")
        assert set(live["ingest"]) == set(health[1]["ingest"])
        status, body = await _get(client, cam["token"], "/api/v1/admin/live")
        assert status == 403
    finally:
        await pub.close()
    assert (await client.get("/api/v1/admin/live")).status == 401
