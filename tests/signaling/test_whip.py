"""WHIP ingest with a real aiortc publisher over loopback."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from livecore.appkeys import HUBS, PUBLISHERS
from livecore.sfu.media import MediaUnit
from tests.conftest import Client, MakeClient, bearer, register, wait_state
from tests.support.media import clip
from tests.support.rtc import loopback_pc, publish

SDP_HEADERS = {"Content-Type": "application/sdp"}


async def _stream(client: Client, slug: str = "live-one") -> tuple[str, str]:
    creator = await register(client, "creator@example.com", creator=True)
    resp = await client.post(
        "/api/v1/streams", json={"slug": slug}, headers=bearer(creator["token"])
    )
    assert resp.status == 201
    return slug, (await resp.json())["stream_key"]


async def _state(client: Client, slug: str) -> str:
    body: dict[str, Any] = await (await client.get(f"/api/v1/streams/{slug}")).json()
    return str(body["stream"]["state"])


async def _first_units(client: Client, slug: str, count: int) -> list[MediaUnit]:
    hub = client.app[HUBS].by_slug(slug)
    assert hub is not None
    sub = hub.subscribe("test")
    try:
        async with asyncio.timeout(20):
            return [u for u in [await sub.get() for _ in range(count)] if u is not None]
    finally:
        hub.unsubscribe(sub)


async def test_publish_goes_live_and_delete_ends_it(client: Client) -> None:
    slug, key = await _stream(client)
    pub = await publish(client.session, str(client.make_url(f"/whip/{slug}")), key, clip())
    try:
        assert pub.location.startswith(f"/whip/{slug}/")
        # livecore is the DTLS server (see the next test); aiortc's client reaches it.
        assert _setup_lines(pub.answer) == ["passive", "passive"]
        await wait_state(client, slug, "live")
        units = await _first_units(client, slug, 40)
        video = [u for u in units if u.kind == "video"]
        assert video and video[0].keyframe and video[0].codec == "h264"
        assert {u.codec for u in units if u.kind == "audio"} == {"opus"}
        for earlier, later in itertools.pairwise(video):
            assert later.pts > earlier.pts
        metrics = await (await client.get("/metrics")).text()
        assert "livecore_sfu_publishers 1.0" in metrics
        assert 'livecore_sfu_ingest_units_total{kind="video"}' in metrics
        resp = await client.delete(pub.location)
        assert resp.status == 200
        await wait_state(client, slug, "offline")
        assert (await client.delete(pub.location)).status == 404
    finally:
        await pub.close()


def _setup_lines(sdp: str) -> list[str]:
    return [
        line.removeprefix("a=setup:") for line in sdp.splitlines() if line.startswith("a=setup:")
    ]


@pytest.mark.parametrize(("offered", "answered"), [
    ("actpass", "passive"),  # the usual offer: livecore takes the DTLS server role
    ("active", "passive"),
    ("passive", "active"),  # an offerer that insists on serving keeps that role
])  # fmt: skip
async def test_answer_takes_the_dtls_server_role_unless_the_offer_chose(
    client: Client, offered: str, answered: str
) -> None:
    # As the DTLS client, aiortc offers ECDSA cipher suites only, which a peer with an RSA
    # certificate (GStreamer's webrtcbin) cannot accept: test_whip_gstreamer.py.
    slug, key = await _stream(client)
    pc = loopback_pc()
    try:
        pc.addTransceiver("video", direction="sendonly")
        pc.addTransceiver("audio", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp.replace("a=setup:actpass", f"a=setup:{offered}")
        headers = {**SDP_HEADERS, **bearer(key)}
        resp = await client.post(f"/whip/{slug}", data=offer, headers=headers)
        assert resp.status == 201, await resp.text()
        assert _setup_lines(await resp.text()) == [answered, answered]
        assert (await client.delete(resp.headers["Location"])).status == 200
    finally:
        await pc.close()


async def test_answer_prefers_h264_even_when_vp8_is_offered_first(client: Client) -> None:
    slug, key = await _stream(client)
    url = str(client.make_url(f"/whip/{slug}"))
    pub = await publish(client.session, url, key, clip(), vp8_first=True)
    try:
        video_section = pub.answer.split("m=video", 1)[1]
        first_payload = video_section.split("\r\n", 1)[0].split()[2]
        assert f"a=rtpmap:{first_payload} H264/90000" in video_section
        units = await _first_units(client, slug, 150)  # a few seconds of audio and video
        assert {u.codec for u in units if u.kind == "video"} == {"h264"}
    finally:
        await pub.close()


async def test_video_only_and_audio_only_publishes_are_accepted(client: Client) -> None:
    slug, key = await _stream(client)
    url = str(client.make_url(f"/whip/{slug}"))
    video_only = await publish(client.session, url, key, clip(), audio=False)
    try:
        units = await _first_units(client, slug, 10)
        assert {u.kind for u in units} == {"video"}
    finally:
        await client.delete(video_only.location)
        await video_only.close()
    audio_only = await publish(client.session, url, key, clip(), video=False)
    try:
        units = await _first_units(client, slug, 10)
        assert {u.kind for u in units} == {"audio"}
    finally:
        await client.delete(audio_only.location)
        await audio_only.close()


async def test_second_publisher_replaces_the_first(client: Client) -> None:
    slug, key = await _stream(client)
    url = str(client.make_url(f"/whip/{slug}"))
    first = await publish(client.session, url, key, clip())
    second = await publish(client.session, url, key, clip())
    try:
        publishers = client.app[PUBLISHERS]
        assert publishers.session(first.location.rsplit("/", 1)[1]) is None
        assert publishers.session(second.location.rsplit("/", 1)[1]) is not None
        assert (await client.delete(first.location)).status == 404
        assert await _state(client, slug) == "live"
        units = await _first_units(client, slug, 10)
        assert units
    finally:
        await first.close()
        await second.close()


async def test_vanished_publisher_ends_the_broadcast(make_client: MakeClient) -> None:
    from dataclasses import replace

    from livecore.config import SfuConfig

    client = await make_client(
        sfu=replace(SfuConfig(ice_host_addresses=("127.0.0.1",)), publisher_idle_timeout_s=1.5)
    )
    slug, key = await _stream(client)
    pub = await publish(client.session, str(client.make_url(f"/whip/{slug}")), key, clip())
    await wait_state(client, slug, "live")
    await pub.close()  # no DELETE: the peer just goes away
    await wait_state(client, slug, "offline")
    assert client.app[HUBS].by_slug(slug) is None


async def test_wrong_or_missing_key_is_401(client: Client) -> None:
    slug, _ = await _stream(client)
    for headers in ({}, {"Authorization": "Bearer lck_wrong"}, {"Authorization": "Basic x"}):
        resp = await client.post(f"/whip/{slug}", data="v=0\r\n", headers=SDP_HEADERS | headers)
        assert resp.status == 401
        assert await resp.json() == {
            "error": {"code": "unauthorized", "message": "invalid stream key"}
        }


async def test_unknown_stream_is_404(client: Client) -> None:
    resp = await client.post(
        "/whip/nobody-here", data="v=0\r\n", headers=SDP_HEADERS | bearer("lck_x")
    )
    assert resp.status == 404


async def test_offer_must_be_sdp(client: Client) -> None:
    slug, key = await _stream(client)
    resp = await client.post(f"/whip/{slug}", json={"sdp": "v=0"}, headers=bearer(key))
    assert resp.status == 415


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ("hello", 400, "not an SDP offer"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", 422, "no audio or video"),
        ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n", 400, "ICE"),
    ],
)
async def test_malformed_or_empty_offers_are_refused(
    client: Client, body: str, status: int, words: str
) -> None:
    slug, key = await _stream(client)
    resp = await client.post(f"/whip/{slug}", data=body, headers=SDP_HEADERS | bearer(key))
    assert resp.status == status
    assert words in (await resp.json())["error"]["message"]
    assert await _state(client, slug) == "offline"


async def test_offer_without_h264_or_vp8_is_refused_with_the_reason(client: Client) -> None:
    slug, key = await _stream(client)
    pub_sdp = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n"
        "a=rtcp-mux\r\na=rtpmap:96 AV1/90000\r\na=ice-ufrag:abcd\r\n"
        "a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"
    )
    resp = await client.post(f"/whip/{slug}", data=pub_sdp, headers=SDP_HEADERS | bearer(key))
    assert resp.status == 422
    assert "H.264" in (await resp.json())["error"]["message"]


async def test_oversized_offer_is_413(client: Client) -> None:
    slug, key = await _stream(client)
    body = "v=0\r\n" + "a=x\r\n" * 20_000
    resp = await client.post(f"/whip/{slug}", data=body, headers=SDP_HEADERS | bearer(key))
    assert resp.status == 413


async def test_cors_preflight_allows_browser_publishing(client: Client) -> None:
    resp = await client.options(
        "/whip/anything",
        headers={"Origin": "https://studio.example", "Access-Control-Request-Method": "POST"},
    )
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert "Location" in resp.headers["Access-Control-Expose-Headers"]


async def test_trickle_ice_patch(client: Client) -> None:
    slug, key = await _stream(client)
    pub = await publish(client.session, str(client.make_url(f"/whip/{slug}")), key, clip())
    try:
        offer = pub.pc.localDescription.sdp
        ufrag = next(line for line in offer.splitlines() if line.startswith("a=ice-ufrag:"))
        frag_headers = {"Content-Type": "application/trickle-ice-sdpfrag"}
        candidate = "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"
        body = f"{ufrag}\r\na=mid:0\r\n{candidate}\r\n"
        resp = await client.patch(pub.location, data=body, headers=frag_headers)
        assert resp.status == 204
        restart = "a=ice-ufrag:brandnew\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
        resp = await client.patch(pub.location, data=restart, headers=frag_headers)
        assert resp.status == 422
        resp = await client.patch(
            pub.location, data=body, headers=frag_headers | {"If-Match": '"stale"'}
        )
        assert resp.status == 412
        resp = await client.patch(pub.location, data=body, headers=SDP_HEADERS)
        assert resp.status == 415
        resp = await client.patch(f"/whip/{slug}/nosuchsession", data=body, headers=frag_headers)
        assert resp.status == 404
    finally:
        await pub.close()
