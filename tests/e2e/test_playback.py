"""Who may play what: public streams, subscriber-only streams with signed tokens, and
recordings as VOD."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import av

from livecore.appkeys import SECRET_KEY
from livecore.auth.playback import PlaybackGrant, sign_playback
from tests.conftest import Client, bearer, register
from tests.support.media import clip
from tests.support.rtc import publish


async def _creator_stream(client: Client, slug: str, visibility: str) -> tuple[str, str]:
    creator = await register(client, f"{slug}@example.com", creator=True)
    resp = await client.post(
        "/api/v1/streams",
        json={"slug": slug, "visibility": visibility},
        headers=bearer(creator["token"]),
    )
    body: dict[str, Any] = await resp.json()
    client.session.cookie_jar.clear()  # the tests below choose who they are explicitly
    return str(creator["token"]), str(body["stream_key"])


async def _until(client: Client, path: str, *, text: str = "", timeout_s: float = 20) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        resp = await client.get(path)
        body = await resp.text()
        if resp.status == 200 and text in body:
            return body
        assert time.monotonic() < deadline, f"{path}: {resp.status} {body[:300]}"
        await asyncio.sleep(0.2)


async def test_subscriber_stream_plays_only_with_a_valid_token(client: Client) -> None:
    owner_token, key = await _creator_stream(client, "members", "subscribers")
    pub = await publish(client.session, str(client.make_url("/whip/members")), key, clip())
    try:
        # Anonymous, and a logged-in viewer who is not allowed.
        assert (await client.get("/hls/members/master.m3u8")).status == 403
        assert (await client.post("/api/v1/streams/members/playback")).status == 401
        viewer = await register(client, "viewer@example.com")
        client.session.cookie_jar.clear()
        resp = await client.post(
            "/api/v1/streams/members/playback", headers=bearer(viewer["token"])
        )
        assert resp.status == 403

        resp = await client.post("/api/v1/streams/members/playback", headers=bearer(owner_token))
        assert resp.status == 200
        ticket = await resp.json()
        token = ticket["token"]
        assert ticket["url"] == f"/hls/members/master.m3u8?token={token}"
        master = await _until(client, ticket["url"], text="source/index.m3u8")
        assert f"source/index.m3u8?token={token}" in master
        playlist = await _until(
            client, f"/hls/members/source/index.m3u8?token={token}", text="#EXT-X-PART:"
        )
        part = next(
            line.split('URI="')[1].split('"')[0]
            for line in playlist.splitlines()
            if line.startswith("#EXT-X-PART:")
        )
        assert part.endswith(f"?token={token}")
        assert (await client.get(f"/hls/members/source/{part}")).status == 200
        bare = part.split("?")[0]
        assert (await client.get(f"/hls/members/source/{bare}")).status == 403

        secret = client.app[SECRET_KEY]
        stream_id = (await (await client.get("/api/v1/streams/members")).json())["stream"]["id"]
        expired = sign_playback(secret, PlaybackGrant(stream_id, 1, int(time.time()) - 1))
        forged = sign_playback(b"not-the-key", PlaybackGrant(stream_id, 1, 2**40))
        other = sign_playback(secret, PlaybackGrant(stream_id + 1, 1, 2**40))
        for bad in (expired, forged, other, token[:-3] + "abc", "junk"):
            resp = await client.get(f"/hls/members/master.m3u8?token={bad}")
            assert resp.status == 403, bad
    finally:
        await pub.close()


def _vod_duration_s(url: str) -> float:
    with av.open(url, "r", options={"http_persistent": "0"}, timeout=10) as container:
        video = container.streams.video[0]
        pts = [p.pts for p in container.demux(video) if p.pts is not None]
        assert video.time_base is not None
        return float((max(pts) - min(pts)) * video.time_base)


async def test_public_stream_plays_for_anyone_and_stays_as_vod(client: Client) -> None:
    _, key = await _creator_stream(client, "open-air", "public")
    pub = await publish(client.session, str(client.make_url("/whip/open-air")), key, clip())
    try:
        resp = await client.post("/api/v1/streams/open-air/playback")
        assert await resp.json() == {
            "url": "/hls/open-air/master.m3u8",
            "token": None,
            "expires_at": None,
        }
        await _until(client, "/hls/open-air/source/index.m3u8", text="#EXTINF")
        await _until(client, "/hls/open-air/source/index.m3u8", text="seg-", timeout_s=30)
        await asyncio.sleep(2.5)  # a few segments' worth of recording
        assert (await client.delete(pub.location)).status == 200
    finally:
        await pub.close()

    deadline = time.monotonic() + 20
    while not (
        recordings := (await (await client.get("/api/v1/streams/open-air/recordings")).json())[
            "recordings"
        ]
    ):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    url = recordings[0]["url"]
    vod = await _until(client, url, text="#EXT-X-ENDLIST")
    assert "#EXT-X-PART" not in vod
    duration = await asyncio.to_thread(_vod_duration_s, str(client.make_url(url)))
    assert duration > 2.0
    for bad in (
        url.replace("vod.m3u8", "..%2Fsecret_key"),
        url.replace("vod.m3u8", "../../secret_key"),
        "/vod/999999/vod.m3u8",
        "/vod/abc/vod.m3u8",
    ):
        assert (await client.get(bad)).status == 404, bad
