"""GET /api/v1/streams/{slug}/health: a live stream's own ingest figures, from its publisher,
for its owner, moderators and admins only. (The window the figures are measured over:
tests/sfu/test_ingest.py.)"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.conftest import Client, MakeClient, bearer, register, wait_state
from tests.streams.test_streams_api import admin, create, creator
from tests.support.media import clip
from tests.support.rtc import publish


async def _health(client: Client, headers: dict[str, str], slug: str = "ann-live") -> Any:
    resp = await client.get(f"/api/v1/streams/{slug}/health", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_live_publishers_figures_reach_its_owner(client: Client, dsn: str) -> None:
    owner = await creator(client)
    key = (await create(client, owner))["stream_key"]
    offline = await _health(client, owner)
    assert offline == {"state": "offline", "started_at": None, "ingest": None}

    media = clip()
    pub = await publish(client.session, str(client.make_url("/whip/ann-live")), key, media)
    try:
        await wait_state(client, "ann-live", "live")
        # The picture size comes once the packager has read the first keyframe, and the
        # keyframe interval once a second keyframe arrived.
        deadline = time.monotonic() + 20
        while True:
            body = await _health(client, owner)
            ingest = body["ingest"]
            if ingest and ingest["width"] and ingest["keyframe_interval_s"]:
                break
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.2)
        assert body["state"] == "live" and body["started_at"]
        assert (ingest["width"], ingest["height"]) == (media.width, media.height)
        assert (ingest["video_codec"], ingest["audio_codec"]) == ("h264", "opus")
        assert ingest["fps"] > 0 and ingest["video_bitrate_bps"] > 0
        assert ingest["audio_bitrate_bps"] > 0
        assert ingest["bitrate_bps"] == ingest["video_bitrate_bps"] + ingest["audio_bitrate_bps"]
        assert ingest["keyframe_interval_s"] > 0
        assert ingest["packets_received"] > 0 and ingest["packets_lost"] >= 0
        assert 0 <= ingest["packet_loss"] <= 1
        assert ingest["last_media_s"] >= 0

        # Moderators and admins see it too; other users do not.
        mod = await register(client, "mod@example.com")
        resp = await client.put(
            f"/api/v1/streams/ann-live/moderators/{mod['user']['id']}", headers=owner
        )
        assert resp.status == 204
        assert (await _health(client, bearer(mod["token"])))["ingest"] is not None
        assert (await _health(client, await admin(client, dsn)))["ingest"] is not None
        viewer = await register(client, "vic@example.com")
        resp = await client.get("/api/v1/streams/ann-live/health", headers=bearer(viewer["token"]))
        assert resp.status == 403
    finally:
        await pub.close()
    client.session.cookie_jar.clear()
    assert (await client.get("/api/v1/streams/ann-live/health")).status == 401


async def test_another_node_says_live_without_ingest_figures(
    make_client: MakeClient, redis_url: str
) -> None:
    """Each node knows the publishers it ingests: another node answers the stream's state
    (from the database) and no figures, never another stream's or stale ones."""
    ingest_node = await make_client(redis_url=redis_url)
    other_node = await make_client(redis_url=redis_url)
    owner = await creator(ingest_node)
    key = (await create(ingest_node, owner))["stream_key"]
    url = str(ingest_node.make_url("/whip/ann-live"))
    pub = await publish(ingest_node.session, url, key, clip())
    try:
        await wait_state(other_node, "ann-live", "live")
        body = await _health(other_node, owner)
        assert body["state"] == "live" and body["started_at"] is not None
        assert body["ingest"] is None
    finally:
        await pub.close()
