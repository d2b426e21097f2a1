"""Ending a live broadcast now: who may, what viewers are told, publishing blocks, key
rotation, takedowns, and an end asked on one node closing the publisher on another."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiortc import RTCPeerConnection

from livecore.appkeys import PUBLISHERS
from livecore.config import ChatConfig
from tests.chat.conftest import FAST_CHAT, connect, user
from tests.conftest import Client, MakeClient, bearer, create_stream, wait_state
from tests.support import media
from tests.support.rtc import Publication, publish


async def sql(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def admin(client: Client, dsn: str, name: str = "root") -> dict[str, str]:
    body = await user(client, name)
    await sql(dsn, "UPDATE users SET role = 'admin' WHERE id = $1", body["user"]["id"])
    return bearer(body["token"])


async def go_live(client: Client, slug: str, key: str) -> Publication:
    """Publish and wait until media is packaged: a broadcast ended before its publisher's ICE
    completes has no media (no recording), and its publisher never learns it was closed."""
    url = str(client.make_url(f"/whip/{slug}"))
    pub = await publish(client.session, url, key, media.clip())
    await wait_state(client, slug, "live")
    async with asyncio.timeout(60):
        while True:
            if (await client.get(f"/hls/{slug}/master.m3u8")).status == 200:
                return pub
            await asyncio.sleep(0.1)


async def whip_refusal(client: Client, slug: str, key: str) -> tuple[int, dict[str, Any]]:
    """A second publisher's WHIP POST: its status and JSON body (201: it was accepted)."""
    url = str(client.make_url(f"/whip/{slug}"))
    try:
        pub = await publish(client.session, url, key, media.clip())
    except AssertionError as exc:
        status, _, body = str(exc).removeprefix("WHIP refused: ").partition(" ")
        return int(status), json.loads(body)
    await client.delete(pub.location)
    await pub.close()
    return 201, {}


async def server_closed(pc: RTCPeerConnection) -> None:
    """Wait until the publisher's peer connection was closed from the server's side."""
    changed = asyncio.Event()
    pc.on("connectionstatechange", changed.set)
    async with asyncio.timeout(30):
        while pc.connectionState not in ("closed", "failed"):
            changed.clear()
            await changed.wait()


async def listed_recording(client: Client, slug: str) -> dict[str, Any]:
    """The stream's one recording, once it is listed (a moment after the broadcast ends)."""
    async with asyncio.timeout(30):
        while True:
            resp = await client.get(f"/api/v1/streams/{slug}/recordings")
            recordings: list[dict[str, Any]] = (await resp.json())["recordings"]
            if recordings:
                (recording,) = recordings
                return recording
            await asyncio.sleep(0.1)


async def end(
    client: Client, slug: str, headers: dict[str, str], **body: Any
) -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"/api/v1/streams/{slug}/end", json=body, headers=headers)
    return resp.status, await resp.json()


async def test_the_owner_ends_the_broadcast_viewers_are_told_why_and_it_is_audited(
    make_client: MakeClient,
) -> None:
    client = await make_client(chat=FAST_CHAT)
    ann = await user(client, "ann", creator=True)
    key = await create_stream(client, ann["token"], "ann-live")
    pub = await go_live(client, "ann-live", key)
    viewer = await connect(client, "ann-live")
    try:
        status, body = await end(
            client, "ann-live", bearer(ann["token"]), reason="Technical trouble, back soon"
        )
        assert (status, body) == (202, {"ended_by": "owner", "blocked_until": None})
        said = await viewer.wait_for(lambda e: e["type"] == "stream_state" and "reason" in e)
        assert said["state"] == "offline"
        assert said["ended_by"] == "owner"
        assert said["reason"] == "Technical trouble, back soon"
        await wait_state(client, "ann-live", "offline")
        assert client.app is not None and client.app[PUBLISHERS].for_stream(1) is None
        await server_closed(pub.pc)
        # The broadcast ended the way a hang-up ends it: recorded as ended.
        resp = await client.get("/api/v1/streams/ann-live/broadcasts", headers=bearer(ann["token"]))
        (broadcast,) = (await resp.json())["broadcasts"]
        assert broadcast["ended_at"] is not None
        # Its recording was finished: listed, and its playlist ends.
        recording = await listed_recording(client, "ann-live")
        playlist = await (await client.get(recording["url"])).text()
        assert playlist.rstrip().endswith("#EXT-X-ENDLIST")
        resp = await client.get("/api/v1/streams/ann-live/audit", headers=bearer(ann["token"]))
        entry = next(e for e in (await resp.json())["entries"] if e["action"] == "stream.end")
        assert entry["actor"]["display_name"] == "ann"
        assert entry["details"]["reason"] == "Technical trouble, back soon"
        assert entry["details"]["ended_by"] == "owner"
    finally:
        await viewer.close()
        await pub.close()


async def test_who_may_end_and_what_is_refused(client: Client, dsn: str) -> None:
    ann = await user(client, "ann", creator=True)
    mod = await user(client, "mod")
    bob = await user(client, "bob")
    root = await admin(client, dsn)
    owner = bearer(ann["token"])
    await create_stream(client, ann["token"], "ann-live")
    resp = await client.put(
        f"/api/v1/streams/ann-live/moderators/{mod['user']['id']}", headers=owner
    )
    assert resp.status == 204, await resp.text()
    reason = {"reason": "rules"}

    # Not live: the owner's end has nothing to end.
    assert (await end(client, "ann-live", owner, **reason))[0] == 409
    assert (await end(client, "no-such", owner, **reason))[0] == 404
    resp = await client.post("/api/v1/streams/ann-live/end", json=reason)
    assert resp.status == 401
    # Live (as the database shows it: no publisher is needed to be refused).
    await sql(dsn, "UPDATE streams SET state = 'live', started_at = now()")
    status, body = await end(client, "ann-live", bearer(bob["token"]), **reason)
    assert status == 403, body
    status, body = await end(client, "ann-live", bearer(mod["token"]), **reason)
    assert status == 403
    assert body["error"]["message"] == (
        "the stream's owner does not let moderators end its broadcasts"
    )
    # Only the owner (or an admin) changes that, and moderators may not block.
    resp = await client.put(
        "/api/v1/streams/ann-live/end-settings",
        json={"moderators_may_end": True},
        headers=bearer(mod["token"]),
    )
    assert resp.status == 403
    resp = await client.put(
        "/api/v1/streams/ann-live/end-settings", json={"moderators_may_end": True}, headers=owner
    )
    assert (resp.status, await resp.json()) == (200, {"moderators_may_end": True})
    status, body = await end(
        client, "ann-live", bearer(mod["token"]), reason="spam", block_for_s=60
    )
    assert (status, body["error"]["message"]) == (403, "only admins may block publishing")
    status, body = await end(client, "ann-live", owner, reason="x", block_for_s=60)
    assert status == 403
    status, body = await end(client, "ann-live", bearer(mod["token"]), reason="spam")
    assert (status, body["ended_by"]) == (202, "moderator")
    status, body = await end(client, "ann-live", root, reason="illegal content")
    assert (status, body["ended_by"]) == (202, "admin")

    # Bad bodies change nothing.
    resp = await client.post(
        "/api/v1/streams/ann-live/end",
        data=b"{not json",
        headers={**owner, "Content-Type": "application/json"},
    )
    assert resp.status == 400
    for bad in (
        {},
        {"reason": "x" * 501},
        {"reason": "   "},
        {"reason": "a\u202eb"},
        {"reason": "ok", "block_for_s": 0},
        {"reason": "ok", "block_for_s": "60"},
    ):
        status, body = await end(client, "ann-live", root, **bad)
        assert status == 422, (bad, body)
        assert list(body["error"]["fields"]) == [
            "reason" if "block_for_s" not in bad else "block_for_s"
        ]
    assert not await sql(dsn, "SELECT 1 FROM publish_blocks")


async def test_an_admins_block_refuses_the_publishers_reconnects_until_it_ends(
    client: Client, dsn: str
) -> None:
    ann = await user(client, "ann", creator=True)
    root = await admin(client, dsn)
    key = await create_stream(client, ann["token"], "ann-live")
    pub = await go_live(client, "ann-live", key)
    try:
        status, body = await end(
            client, "ann-live", root, reason="Terms of service, 4.2", block_for_s=3600
        )
        assert status == 202 and body["blocked_until"] is not None
        await server_closed(pub.pc)
        await wait_state(client, "ann-live", "offline")
    finally:
        await pub.close()
    status, body = await whip_refusal(client, "ann-live", key)
    assert status == 403
    until = body_until(body)
    assert datetime.fromisoformat(until) > datetime.now(UTC)
    assert body["error"]["message"] == f"publishing is blocked until {until}: Terms of service, 4.2"
    # A wrong key learns nothing of the block.
    assert (await whip_refusal(client, "ann-live", "wrong"))[0] == 401
    # The block's end passes (set in the past rather than waited for): publishing works.
    await sql(dsn, "UPDATE publish_blocks SET until = now() - interval '1 second'")
    assert (await whip_refusal(client, "ann-live", key))[0] == 201


def body_until(body: dict[str, Any]) -> str:
    message: str = body["error"]["message"]
    return message.removeprefix("publishing is blocked until ").split(": ", 1)[0]


async def test_an_admin_lifts_a_block(client: Client, dsn: str) -> None:
    ann = await user(client, "ann", creator=True)
    root = await admin(client, dsn)
    key = await create_stream(client, ann["token"], "ann-live")
    resp = await client.post(
        "/api/v1/streams/ann-live/takedown", json={"reason": "copyright"}, headers=root
    )
    assert resp.status == 200
    assert (await whip_refusal(client, "ann-live", key))[0] == 403
    resp = await client.delete("/api/v1/streams/ann-live/block", headers=bearer(ann["token"]))
    assert resp.status == 403
    assert (await client.delete("/api/v1/streams/ann-live/block", headers=root)).status == 204
    assert (await client.delete("/api/v1/streams/ann-live/block", headers=root)).status == 404
    assert (await whip_refusal(client, "ann-live", key))[0] == 201


async def test_rotating_the_key_ends_the_live_session(make_client: MakeClient) -> None:
    client = await make_client(chat=FAST_CHAT)
    ann = await user(client, "ann", creator=True)
    key = await create_stream(client, ann["token"], "ann-live")
    pub = await go_live(client, "ann-live", key)
    viewer = await connect(client, "ann-live")
    try:
        resp = await client.post("/api/v1/streams/ann-live/key", headers=bearer(ann["token"]))
        assert resp.status == 200
        said = await viewer.wait_for(lambda e: e["type"] == "stream_state" and "reason" in e)
        assert (said["ended_by"], said["reason"]) == ("key_rotation", "the stream key was changed")
        await server_closed(pub.pc)
        await wait_state(client, "ann-live", "offline")
        # The old key is refused; the new one publishes.
        assert (await whip_refusal(client, "ann-live", key))[0] == 401
        new_key = (await resp.json())["stream_key"]
        assert (await whip_refusal(client, "ann-live", new_key))[0] == 201
    finally:
        await viewer.close()
        await pub.close()


async def test_taking_a_live_stream_down_ends_it_blocks_it_and_hides_its_recording(
    client: Client, dsn: str
) -> None:
    ann = await user(client, "ann", creator=True)
    root = await admin(client, dsn)
    key = await create_stream(client, ann["token"], "ann-live")
    pub = await go_live(client, "ann-live", key)
    try:
        resp = await client.post(
            "/api/v1/streams/ann-live/takedown", json={"reason": "x"}, headers=bearer(ann["token"])
        )
        assert resp.status == 403
        resp = await client.post(
            "/api/v1/streams/ann-live/takedown",
            json={"reason": "illegal content", "block_for_s": 86400},
            headers=root,
        )
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["ended_by"] == "admin"
        await server_closed(pub.pc)
        await wait_state(client, "ann-live", "offline")
    finally:
        await pub.close()
    # No thumbnail, no recording, no new broadcast.
    assert (await client.get("/hls/ann-live/thumb.jpg")).status == 404
    # Once its recording is complete on disk (which lists any other), it stays hidden.
    query = "SELECT id, recording_deleted_at FROM broadcasts WHERE recording_ready"
    # A bound, not a figure: finishing the recording takes a second alone and far longer
    # when the whole suite shares two cores.
    async with asyncio.timeout(90):
        while True:
            if rows := await sql(dsn, query):
                break
            await asyncio.sleep(0.1)
    assert [r["recording_deleted_at"] is not None for r in rows] == [True]
    resp = await client.get("/api/v1/streams/ann-live/recordings")
    assert (await resp.json())["recordings"] == []
    assert (await client.get(f"/vod/{rows[0]['id']}/vod.m3u8")).status == 404
    status, body = await whip_refusal(client, "ann-live", key)
    assert status == 403 and body_until(body)
    (entry,) = await sql(dsn, "SELECT actor_id, details FROM audit_log WHERE action = $1",
                         "stream.takedown")  # fmt: skip
    assert '"reason": "illegal content"' in entry["details"]


async def test_an_end_asked_on_one_node_closes_the_publisher_on_another(
    make_client: MakeClient, redis_url: str, dsn: str
) -> None:
    chat = ChatConfig(tick_ms=20, presence_interval_s=0.3)
    node_a = await make_client(redis_url=redis_url, chat=chat)
    node_b = await make_client(redis_url=redis_url, chat=chat)
    ann = await user(node_a, "ann", creator=True)
    root = await admin(node_b, dsn)
    key = await create_stream(node_a, ann["token"], "ann-live")
    pub = await go_live(node_a, "ann-live", key)
    viewer_b = await connect(node_b, "ann-live")
    try:
        assert node_a.app is not None and node_a.app[PUBLISHERS].for_stream(1) is not None
        status, _ = await end(node_b, "ann-live", root, reason="Ended by the platform")
        assert status == 202
        said = await viewer_b.wait_for(lambda e: e["type"] == "stream_state" and "reason" in e)
        assert (said["ended_by"], said["reason"]) == ("admin", "Ended by the platform")
        await server_closed(pub.pc)
        assert node_a.app[PUBLISHERS].for_stream(1) is None
        await wait_state(node_b, "ann-live", "offline")
    finally:
        await viewer_b.close()
        await pub.close()
