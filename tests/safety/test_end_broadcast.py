"""Ending a reported live broadcast from the review queue."""

from __future__ import annotations

import asyncpg

from tests.conftest import Client, bearer, create_stream, register, wait_state
from tests.safety.conftest import admin
from tests.support.media import clip
from tests.support.rtc import publish


async def test_end_broadcast_from_the_queue(node: Client, dsn: str) -> None:
    owner = await register(node, "maker@example.com", creator=True)
    viewer = await register(node, "viewer@example.com")
    node.session.cookie_jar.clear()
    key = await create_stream(node, str(owner["token"]), "golive")
    root = await admin(node, dsn)
    pub = await publish(node.session, str(node.make_url("/whip/golive")), key, clip())
    try:
        await wait_state(node, "golive", "live")
        resp = await node.post(
            "/api/v1/reports", json={"target_kind": "stream", "stream": "golive",
                                     "category": "violence"},
            headers=bearer(str(viewer["token"])),
        )  # fmt: skip
        report = (await resp.json())["report"]
        # A reason the watch page could not show is refused before anything ends.
        resp = await node.post(
            f"/api/v1/admin/reports/{report['id']}/action",
            json={"action": "end_broadcast", "reason": " "}, headers=bearer(str(root["token"])),
        )  # fmt: skip
        assert resp.status == 422
        resp = await node.post(
            f"/api/v1/admin/reports/{report['id']}/action",
            json={"action": "end_broadcast", "reason": "graphic violence"},
            headers=bearer(str(root["token"])),
        )  # fmt: skip
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["closed"] == [report["id"]]
        # The publisher's session is closed and the stream goes offline.
        await wait_state(node, "golive", "offline")
    finally:
        await pub.close()
    conn = await asyncpg.connect(dsn)
    try:
        ends = await conn.fetch(
            "SELECT actor_id, details FROM audit_log WHERE action = 'stream.end'"
        )
        queue = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'report.end_broadcast'"
        )
    finally:
        await conn.close()
    assert [e["actor_id"] for e in ends] == [root["user"]["id"]]
    assert '"graphic violence"' in ends[0]["details"]
    assert queue == 1
    resp = await node.get("/api/v1/me/notifications", headers=bearer(str(viewer["token"])))
    [note] = (await resp.json())["notifications"]
    assert note["outcome"] == "end_broadcast"
