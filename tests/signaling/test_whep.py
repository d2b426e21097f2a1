"""WHEP playback: a real aiortc viewer receives the publisher's media as it was sent."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from aiortc import RTCRtpReceiver, RTCSessionDescription

from livecore.config import SfuConfig
from livecore.sfu.media import h264_is_keyframe
from livecore.sfu.passthrough import EncodedFrame
from tests.conftest import Client, MakeClient, bearer, register
from tests.support.media import clip
from tests.support.rtc import Publication, loopback_pc, publish

SDP = {"Content-Type": "application/sdp"}
FRAG = {"Content-Type": "application/trickle-ice-sdpfrag"}


async def _live(client: Client, slug: str, visibility: str = "public") -> Publication:
    creator = await register(client, f"{slug}@example.com", creator=True)
    resp = await client.post(
        "/api/v1/streams",
        json={"slug": slug, "visibility": visibility},
        headers=bearer(creator["token"]),
    )
    key = (await resp.json())["stream_key"]
    client.session.cookie_jar.clear()
    return await publish(client.session, str(client.make_url(f"/whip/{slug}")), key, clip())


async def test_viewer_receives_h264_from_a_keyframe_and_opus(client: Client) -> None:
    pub = await _live(client, "watch-rtc")
    pc = loopback_pc()
    try:
        video = pc.addTransceiver("video", direction="recvonly")
        caps = RTCRtpReceiver.getCapabilities("video")
        assert caps is not None
        video.setCodecPreferences(
            [c for c in caps.codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]
        )
        audio = pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        resp = await client.post("/whep/watch-rtc", data=pc.localDescription.sdp, headers=SDP)
        assert resp.status == 201, await resp.text()
        location = resp.headers["Location"]
        answer = await resp.text()
        # livecore answers as the DTLS server (a=setup:passive); aiortc's client reaches it.
        setup = [line for line in answer.splitlines() if line.startswith("a=setup:")]
        assert setup == ["a=setup:passive", "a=setup:passive"]
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        async with asyncio.timeout(20):
            first = await video.receiver.track.recv()
            sound = await audio.receiver.track.recv()
        assert isinstance(first, EncodedFrame) and first.codec == "h264"
        assert h264_is_keyframe(first.data)
        assert isinstance(sound, EncodedFrame) and sound.codec == "opus"
        assert (await client.delete(location)).status == 200
        assert (await client.delete(location)).status == 404
    finally:
        await pc.close()
        await pub.close()


async def test_offline_stream_is_404(client: Client) -> None:
    pc = loopback_pc()
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        resp = await client.post("/whep/nobody-live", data=pc.localDescription.sdp, headers=SDP)
        assert resp.status == 404
    finally:
        await pc.close()


async def test_subscriber_stream_needs_a_playback_token(client: Client) -> None:
    pub = await _live(client, "members-rtc", "subscribers")
    pc = loopback_pc()
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        resp = await client.post("/whep/members-rtc", data=offer, headers=SDP)
        assert resp.status == 403
        resp = await client.post(
            "/whep/members-rtc", data=offer, headers=SDP | bearer("forged.token")
        )
        assert resp.status == 403
    finally:
        await pc.close()
        await pub.close()


async def test_full_node_answers_503(make_client: MakeClient) -> None:
    client = await make_client(
        sfu=replace(SfuConfig(ice_host_addresses=("127.0.0.1",)), max_viewers=0)
    )
    pub = await _live(client, "crowded")
    pc = loopback_pc()
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        resp = await client.post("/whep/crowded", data=pc.localDescription.sdp, headers=SDP)
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "10"
    finally:
        await pc.close()
        await pub.close()


async def test_publish_only_offer_is_refused(client: Client) -> None:
    pub = await _live(client, "one-way")
    pc = loopback_pc()
    try:
        pc.addTransceiver("video", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        resp = await client.post("/whep/one-way", data=pc.localDescription.sdp, headers=SDP)
        assert resp.status == 422
    finally:
        await pc.close()
        await pub.close()


async def test_trickle_ice_patch_on_a_viewer_session(client: Client) -> None:
    pub = await _live(client, "trickled")
    pc = loopback_pc()
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        resp = await client.post("/whep/trickled", data=offer, headers=SDP)
        assert resp.status == 201, await resp.text()
        location, etag = resp.headers["Location"], resp.headers["ETag"]
        assert resp.headers["Accept-Patch"] == FRAG["Content-Type"]
        ufrag = next(line for line in offer.splitlines() if line.startswith("a=ice-ufrag:"))
        candidate = "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"
        body = f"{ufrag}\r\na=mid:0\r\n{candidate}\r\n"
        resp = await client.patch(location, data=body, headers=FRAG | {"If-Match": etag})
        assert resp.status == 204
        restart = "a=ice-ufrag:brandnew\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
        assert (await client.patch(location, data=restart, headers=FRAG)).status == 422
        stale = FRAG | {"If-Match": '"stale"'}
        assert (await client.patch(location, data=body, headers=stale)).status == 412
        assert (await client.patch(location, data=body, headers=SDP)).status == 415
        resp = await client.patch("/whep/trickled/nosuchsession", data=body, headers=FRAG)
        assert resp.status == 404
        assert (await resp.json())["error"]["message"] == "no such WHEP session"
    finally:
        await pc.close()
        await pub.close()
