"""WHEP across nodes: a viewer's offer, and the signaling requests a node sent elsewhere."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver

from livecore.appkeys import METRICS
from tests.conftest import Client, wait_state
from tests.support.media import clip
from tests.support.rtc import Publication, loopback_pc, publish

SDP = {"Content-Type": "application/sdp"}


async def forwards(client: Client, outcome: str) -> float:
    """How many signaling requests `client`'s node sent elsewhere with this outcome."""
    registry = client.app[METRICS].registry
    name, labels = "livecore_edge_signaling_requests_total", {"outcome": outcome}
    # In a thread: the registry's process collector reads /proc.
    return await asyncio.to_thread(registry.get_sample_value, name, labels) or 0.0


async def publish_on(client: Client, slug: str, key: str) -> Publication:
    """A publisher on `client`'s node, once the stream shows live there."""
    pub = await publish(client.session, str(client.make_url(f"/whip/{slug}")), key, clip())
    await wait_state(client, slug, "live")
    return pub


def viewer_offer() -> tuple[RTCPeerConnection, Any, Any]:
    """A viewer's peer with recvonly H.264 video and audio: (peer, video, audio transceivers)."""
    pc = loopback_pc()
    video = pc.addTransceiver("video", direction="recvonly")
    caps = RTCRtpReceiver.getCapabilities("video")
    assert caps is not None
    video.setCodecPreferences(
        [c for c in caps.codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]
    )
    audio = pc.addTransceiver("audio", direction="recvonly")
    return pc, video, audio
