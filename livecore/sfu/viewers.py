"""WHEP viewers: the stream's encoded media forwarded to a WebRTC peer, never re-encoded.

Each viewer has one bounded hub subscription; a small task splits it into the video and
audio tracks aiortc's senders pull from. Packetising and encrypting are per viewer by the
nature of WebRTC (each peer has its own SRTP keys); nothing is decoded or encoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from livecore.config import SfuConfig
from livecore.sfu.hub import StreamHub, Subscription
from livecore.sfu.media import MediaUnit
from livecore.sfu.offer import inspect_offer
from livecore.sfu.passthrough import answer_dtls_passive, forward_keyframe_requests
from livecore.sfu.publisher import UnknownSession, add_trickled, rtc_configuration

logger = logging.getLogger(__name__)

# Per track: a few frames of slack between the splitter and the sender. The hub subscription
# upstream is the real buffer (and drops to the next keyframe when the viewer is slow).
_TRACK_QUEUE = 32


class TooManyViewers(Exception):
    pass


class _ForwardTrack(MediaStreamTrack):
    """Hands encoded units to aiortc's sender as packets, which it packetises as they are."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.queue: asyncio.Queue[MediaUnit | None] = asyncio.Queue(_TRACK_QUEUE)

    async def recv(self) -> av.Packet[Any]:  # aiortc sends encoded packets as they are
        unit = await self.queue.get()
        if unit is None:
            self.stop()
            raise MediaStreamError
        packet = av.Packet(unit.data)
        packet.pts = unit.pts
        packet.time_base = fractions.Fraction(1, unit.clock_hz)
        return packet


@dataclass(frozen=True, slots=True)
class ViewerSession:
    id: str
    answer_sdp: str


class _Viewer:
    def __init__(self, hub: StreamHub, pc: RTCPeerConnection, sub: Subscription) -> None:
        self.id = secrets.token_urlsafe(16)
        self.hub = hub
        self.pc = pc
        self.sub = sub
        self.tracks: dict[str, _ForwardTrack] = {}
        self.task: asyncio.Task[None] | None = None

    async def split(self) -> None:
        """Route the subscription's units to the video and audio tracks."""
        try:
            while (unit := await self.sub.get()) is not None:
                track = self.tracks.get(unit.kind)
                if track is None:
                    continue
                try:
                    track.queue.put_nowait(unit)
                except asyncio.QueueFull:
                    # The sender is not keeping up: drop, and restart video at a keyframe.
                    if unit.kind == "video":
                        self.hub.request_keyframe()
        finally:
            for track in self.tracks.values():
                with contextlib.suppress(asyncio.QueueFull):
                    track.queue.put_nowait(None)

    async def close(self) -> None:
        self.hub.unsubscribe(self.sub)
        self.sub.end()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.pc.close()


def _sender_codecs(kind: str) -> list[Any]:
    capabilities = RTCRtpSender.getCapabilities(kind)
    codecs = capabilities.codecs if capabilities is not None else []
    wanted = ("video/h264", "video/rtx") if kind == "video" else ("audio/opus",)
    return [c for c in codecs if c.mimeType.lower() in wanted]


class Viewers:
    """Every WHEP viewer of this process."""

    def __init__(self, settings: SfuConfig) -> None:
        self._settings = settings
        self._by_id: dict[str, _Viewer] = {}
        self._closing: set[asyncio.Task[bool]] = set()

    @property
    def count(self) -> int:
        return len(self._by_id)

    async def start(self, hub: StreamHub, offer_sdp: str) -> ViewerSession:
        """Answer a viewer's recvonly offer. Raises OfferError or TooManyViewers."""
        summary = inspect_offer(offer_sdp, want="play")
        if len(self._by_id) >= self._settings.max_viewers:
            raise TooManyViewers()
        pc = RTCPeerConnection(rtc_configuration(self._settings))
        sub = hub.subscribe("whep", replay_gop=False)
        viewer = _Viewer(hub, pc, sub)
        try:
            for kind in summary.kinds:
                track = viewer.tracks.setdefault(kind, _ForwardTrack(kind))
                transceiver: RTCRtpTransceiver = pc.addTransceiver(track, direction="sendonly")
                transceiver.setCodecPreferences(_sender_codecs(kind))
                if kind == "video":
                    forward_keyframe_requests(transceiver.sender, hub.request_keyframe)

            @pc.on("connectionstatechange")
            async def on_state() -> None:
                if pc.connectionState in ("failed", "closed"):
                    await self.stop(viewer.id)

            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            answer_dtls_passive(pc)  # GStreamer's RSA certificate: see passthrough
            await pc.setLocalDescription(await pc.createAnswer())
        except BaseException:
            await viewer.close()
            raise
        viewer.task = asyncio.create_task(viewer.split(), name=f"whep:{hub.slug}")
        # When the broadcast ends the viewer's session ends with it.
        viewer.task.add_done_callback(lambda _: self._stop_later(viewer.id))
        self._by_id[viewer.id] = viewer
        logger.info("stream %s: WHEP viewer %s joined", hub.slug, viewer.id)
        return ViewerSession(viewer.id, pc.localDescription.sdp)

    def session_stream(self, session_id: str) -> str | None:
        viewer = self._by_id.get(session_id)
        return viewer.hub.slug if viewer is not None else None

    async def add_candidates(self, session_id: str, sdpfrag: str) -> None:
        """Trickle ICE (RFC 8840 sdpfrag): add the viewer's candidates to its session. Raises
        UnknownSession, IceRestartUnsupported, or ValueError for a malformed candidate."""
        viewer = self._by_id.get(session_id)
        if viewer is None:
            raise UnknownSession(session_id)
        await add_trickled(viewer.pc, session_id, sdpfrag)

    async def stop(self, session_id: str) -> bool:
        viewer = self._by_id.pop(session_id, None)
        if viewer is None:
            return False
        await viewer.close()
        return True

    def _stop_later(self, session_id: str) -> None:
        if session_id in self._by_id:
            task = asyncio.create_task(self.stop(session_id))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for session_id in list(self._by_id):
            await self.stop(session_id)
        await asyncio.gather(*self._closing, return_exceptions=True)
