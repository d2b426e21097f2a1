"""A real aiortc publisher for tests: sends pre-encoded H.264 and Opus over WHIP, paced in
real time, with ICE restricted to 127.0.0.1."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import av
from aiohttp import ClientSession
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from livecore.sfu.media import MediaUnit
from livecore.sfu.passthrough import restrict_host_addresses
from tests.media import Clip


class PacketTrack(MediaStreamTrack):
    """Plays a list of encoded units in a loop at their own pace; aiortc sends them as-is."""

    def __init__(self, kind: str, units: Sequence[MediaUnit], loop_s: float) -> None:
        super().__init__()
        self.kind = kind
        self._units = units
        self._loop_s = loop_s
        self._index = 0
        self._round = 0
        self._start: float | None = None
        self.sent = 0

    async def recv(self) -> av.Packet[Any]:  # aiortc sends encoded packets as they are
        unit = self._units[self._index]
        offset_s = self._round * self._loop_s
        if self._start is None:
            self._start = time.monotonic() - unit.pts_s
        wait = self._start + unit.pts_s + offset_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        packet = av.Packet(unit.data)
        packet.pts = unit.pts + round(offset_s * unit.clock_hz)
        packet.time_base = fractions.Fraction(1, unit.clock_hz)
        self._index += 1
        if self._index == len(self._units):
            self._index, self._round = 0, self._round + 1
        self.sent += 1
        return packet


@dataclass
class Publication:
    pc: RTCPeerConnection
    location: str
    answer: str
    tracks: list[PacketTrack]

    async def close(self) -> None:
        for track in self.tracks:
            track.stop()
        await self.pc.close()


def loopback_pc() -> RTCPeerConnection:
    restrict_host_addresses(["127.0.0.1"])
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def publish(
    http: ClientSession,
    url: str,
    key: str,
    clip: Clip,
    *,
    video: bool = True,
    audio: bool = True,
    vp8_first: bool = False,
) -> Publication:
    """WHIP-publish `clip` in a loop; raises AssertionError with the body on refusal."""
    pc = loopback_pc()
    loop_s = len(clip.video) / clip.fps
    tracks = []
    if video:
        vt = PacketTrack("video", clip.video, loop_s)
        transceiver = pc.addTransceiver(vt, direction="sendonly")
        caps = RTCRtpSender.getCapabilities("video")
        assert caps is not None
        # Like Chromium, optionally list VP8 before H.264: livecore must still pick H.264.
        # A VP8 clip offers VP8 only, like a browser without an H.264 encoder.
        if clip.video[0].codec == "vp8":
            order: tuple[str, ...] = ("video/vp8",)
        elif vp8_first:
            order = ("video/vp8", "video/h264")
        else:
            order = ("video/h264",)
        preferred = [c for name in order for c in caps.codecs if c.mimeType.lower() == name]
        rtx = [c for c in caps.codecs if c.mimeType.lower() == "video/rtx"]
        transceiver.setCodecPreferences(preferred + rtx)
        tracks.append(vt)
    if audio:
        at = PacketTrack("audio", clip.audio, loop_s)
        pc.addTransceiver(at, direction="sendonly")
        tracks.append(at)
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"}
    async with http.post(url, data=pc.localDescription.sdp, headers=headers) as resp:
        body = await resp.text()
        if resp.status != 201:
            await pc.close()
            raise AssertionError(f"WHIP refused: {resp.status} {body}")
        location = resp.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return Publication(pc, location, body, tracks)
