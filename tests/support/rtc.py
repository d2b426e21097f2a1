"""A real aiortc publisher for tests: sends pre-encoded H.264 and Opus over WHIP, paced in
real time, with ICE restricted to 127.0.0.1."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiohttp import ClientSession
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from yarl import URL

from livecore.sfu.media import VIDEO_CLOCK_HZ, MediaUnit, h264_is_keyframe
from livecore.sfu.passthrough import forward_keyframe_requests, restrict_host_addresses
from tests.conftest import Client, wait_state
from tests.support import media
from tests.support.media import FPS, Clip

# A draining node's 307 names a node that takes publishes: one hop; a few allow for chains.
_REDIRECTS = 3


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


class AskedKeyframesTrack(MediaStreamTrack):
    """Live H.264 from an encoder that makes a keyframe at the start and then only when the
    receiver asks (PLI/FIR), as a browser's does (Chromium's OpenH264 has no periodic
    keyframes over WebRTC); with `honour_requests=False`, never again, like a publisher that
    ignores keyframe requests. Encoded with libx264 in a thread, paced in real time."""

    kind = "video"

    def __init__(self, *, width: int = 320, height: int = 180, honour_requests: bool = True):
        super().__init__()
        self._width, self._height = width, height
        self._honour = honour_requests
        self._want_keyframe = False
        self._frame = 0
        self._start: float | None = None
        self.requests = 0  # keyframe requests received
        self.keyframes = 0  # keyframes sent
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = fractions.Fraction(1, VIDEO_CLOCK_HZ)
        ctx.framerate = fractions.Fraction(FPS, 1)
        ctx.bit_rate = 300_000
        ctx.max_b_frames = 0
        # No periodic keyframe at all; a frame marked I becomes an IDR (forced-idr).
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "forced-idr": "1",
            "x264-params": "keyint=infinite:scenecut=0:repeat-headers=1",
        }
        self._ctx = ctx

    def request_keyframe(self) -> None:
        self.requests += 1
        self._want_keyframe = self._honour

    async def recv(self) -> av.Packet[Any]:
        while True:
            i = self._frame
            self._frame += 1
            if self._start is None:
                self._start = time.monotonic()
            wait = self._start + i / FPS - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            key, self._want_keyframe = self._want_keyframe, False
            packets = await asyncio.to_thread(self._encode, i, key)
            if packets:  # zerolatency: one access unit per frame
                data = b"".join(bytes(p) for p in packets)
                self.keyframes += h264_is_keyframe(data)
                packet = av.Packet(data)
                packet.pts = i * VIDEO_CLOCK_HZ // FPS
                packet.time_base = fractions.Fraction(1, VIDEO_CLOCK_HZ)
                return packet

    def _encode(self, i: int, keyframe: bool) -> list[av.Packet[Any]]:
        yy, xx = np.mgrid[0 : self._height, 0 : self._width]
        img = np.stack([(xx + 4 * i) & 255, (yy + 2 * i) & 255, (xx ^ yy) & 255], -1)
        frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i * VIDEO_CLOCK_HZ // FPS
        frame.time_base = self._ctx.time_base
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        return list(self._ctx.encode(frame))


@dataclass
class Publication:
    pc: RTCPeerConnection
    location: str
    answer: str
    tracks: list[MediaStreamTrack]
    endpoint: str = ""  # the WHIP URL that took it (a 307 from a draining node followed)

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
    live_video: AskedKeyframesTrack | None = None,
) -> Publication:
    """WHIP-publish `clip` in a loop (its audio with `live_video` instead of its video when
    given); raises AssertionError with the body on refusal."""
    pc = loopback_pc()
    loop_s = len(clip.video) / clip.fps
    tracks: list[MediaStreamTrack] = []
    if live_video is not None:
        transceiver = pc.addTransceiver(live_video, direction="sendonly")
        caps = RTCRtpSender.getCapabilities("video")
        assert caps is not None
        h264 = [c for c in caps.codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]
        transceiver.setCodecPreferences(h264)
        # aiortc turns a PLI/FIR into a flag for its own encoder; this track has its own.
        forward_keyframe_requests(transceiver.sender, live_video.request_keyframe)
        tracks.append(live_video)
    elif video:
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
    endpoint = url
    for _ in range(_REDIRECTS + 1):
        # Followed here, not by aiohttp: it drops the Authorization header on a redirect to
        # another origin, and a WHIP client sends its key to the node it is sent to.
        post = http.post(endpoint, data=pc.localDescription.sdp, headers=headers,
                         allow_redirects=False)  # fmt: skip
        async with post as resp:
            body = await resp.text()
            status, location = resp.status, resp.headers.get("Location", "")
        if status != 307 or not location:
            break
        endpoint = str(URL(endpoint).join(URL(location)))
    if status != 201:
        await pc.close()
        raise AssertionError(f"WHIP refused: {status} {body}")
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return Publication(pc, location, body, tracks, endpoint)


@asynccontextmanager
async def publishing(client: Client, slug: str, key: str) -> AsyncIterator[Publication]:
    """Publish the test clip to `slug` until the block ends, then end the broadcast."""
    pub = await publish(client.session, str(client.make_url(f"/whip/{slug}")), key, media.clip())
    try:
        await wait_state(client, slug, "live")
        yield pub
    finally:
        await client.delete(pub.location)
        await pub.close()
