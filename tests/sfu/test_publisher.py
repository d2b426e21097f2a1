"""What the sfu does beneath a WHIP publish, with a real aiortc publisher over loopback: a
VP8-only publisher's video reaches the hub as H.264 (sfu/publisher.py, sfu/vp8.py), and the
media sockets get the larger receive buffer (sfu/passthrough.py, item 4)."""

from __future__ import annotations

import asyncio
import socket

from livecore.appkeys import HUBS, PUBLISHERS
from livecore.sfu.media import h264_is_keyframe
from tests.conftest import Client
from tests.signaling.test_whip import _stream
from tests.support.media import clip, vp8_clip
from tests.support.rtc import publish


async def test_vp8_only_publisher_is_transcoded_to_h264(client: Client) -> None:
    slug, key = await _stream(client)
    url = str(client.make_url(f"/whip/{slug}"))
    pub = await publish(client.session, url, key, vp8_clip())
    try:
        assert "VP8/90000" in pub.answer.split("m=video", 1)[1]
        hub = client.app[HUBS].by_slug(slug)
        assert hub is not None
        sub = hub.subscribe("test")
        try:
            async with asyncio.timeout(30):
                while (unit := await sub.get()) is not None and unit.kind != "video":
                    pass
        finally:
            hub.unsubscribe(sub)
        assert unit is not None and unit.codec == "h264" and unit.keyframe
        assert h264_is_keyframe(unit.data)
    finally:
        await pub.close()


async def test_media_sockets_get_the_larger_receive_buffer(client: Client) -> None:
    slug, key = await _stream(client)
    pub = await publish(client.session, str(client.make_url(f"/whip/{slug}")), key, clip())
    try:
        session = client.app[PUBLISHERS].session(pub.location.rsplit("/", 1)[1])
        assert session is not None
        ice = session.pc.getTransceivers()[0].receiver.transport.transport
        sockets = [p.transport.get_extra_info("socket") for p in ice._connection._protocols]
        sizes = [s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) for s in sockets]
        # Linux reports twice the size granted; the default is about 208 KiB.
        assert sizes and min(sizes) > 1024 * 1024
    finally:
        await pub.close()
