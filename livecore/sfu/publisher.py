"""Publishers: one aiortc peer connection per live stream, pushing encoded media into its hub.

At most one publisher per stream: a new publish with the right key replaces the old session
(OBS reconnecting after a network change) and continues the same hub and timeline. A
publisher ends on DELETE, when its connection fails, or when its media stops for
`publisher_idle_timeout_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from livecore.config import SfuConfig
from livecore.sfu.hub import HubRegistry, StreamHub
from livecore.sfu.ingest import IngestHealth, IngestMeter
from livecore.sfu.intake import TrackIntake
from livecore.sfu.media import MediaKind, MediaUnit
from livecore.sfu.metrics import SfuMetrics
from livecore.sfu.offer import OfferSummary, inspect_offer
from livecore.sfu.passthrough import answer_dtls_passive, deliver_inline, send_pli
from livecore.sfu.vp8 import TranscoderFactory, VideoTranscoder

logger = logging.getLogger(__name__)


class UnknownSession(Exception):
    pass


class IceRestartUnsupported(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PublishSession:
    id: str
    stream_id: int
    answer_sdp: str


StateCallback = Callable[[StreamHub, bool], None]


def rtc_configuration(settings: SfuConfig) -> RTCConfiguration:
    # An explicit empty list: aiortc would otherwise use a public STUN server by default.
    servers = [
        RTCIceServer(
            urls=url,
            username=settings.turn_username or None,
            credential=settings.turn_password or None,
        )
        if url.startswith("turn")
        else RTCIceServer(urls=url)
        for url in settings.ice_servers
    ]
    return RTCConfiguration(iceServers=servers)


async def add_trickled(pc: RTCPeerConnection, session_id: str, sdpfrag: str) -> None:
    """Add a peer's trickled candidates (RFC 8840 sdpfrag) to its connection. Raises
    IceRestartUnsupported for new ICE credentials, ValueError for a malformed candidate."""
    remote = pc.remoteDescription
    for line in sdpfrag.splitlines():
        line = line.strip()
        ufrag = line.removeprefix("a=ice-ufrag:")
        if ufrag != line and remote is not None and ufrag not in remote.sdp:
            raise IceRestartUnsupported(session_id)
        if line.startswith("a=candidate:"):
            candidate = candidate_from_sdp(line[len("a=") :])
            candidate.sdpMLineIndex = 0
            await pc.addIceCandidate(candidate)


def _preferred_codecs(kind: str, *, vp8: bool) -> list[RTCRtpCodecCapability]:
    """H.264 first for video, whatever order the offer lists (Chromium lists VP8 first);
    VP8 only as a fallback, and only when it can be transcoded."""
    capabilities = RTCRtpReceiver.getCapabilities(kind)
    codecs = capabilities.codecs if capabilities is not None else []
    if kind == "video":
        wanted = ("video/h264", "video/vp8") if vp8 else ("video/h264",)
        chosen = [c for name in wanted for c in codecs if c.mimeType.lower() == name]
        rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
        return [*chosen, *rtx]
    return [c for c in codecs if c.mimeType.lower() == "audio/opus"]


class Publisher:
    """One live publishing session."""

    def __init__(
        self,
        hub: StreamHub,
        pc: RTCPeerConnection,
        idle_timeout_s: float,
        metrics: SfuMetrics | None = None,
        transcoders: TranscoderFactory | None = None,
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self._transcoders = transcoders
        self._vp8: VideoTranscoder | None = None
        self.metrics = metrics
        self._lost_reported = 0
        self.meter = IngestMeter()
        self.hub = hub
        self.pc = pc
        self._idle_timeout_s = idle_timeout_s
        self._last_media = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        self._video_receiver: RTCRtpReceiver | None = None
        self._closed = asyncio.Event()

    def spawn(self, coro: object, name: str) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]  # a coroutine
        task.set_name(f"{name}:{self.hub.slug}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_track(self, track: MediaStreamTrack, receiver: RTCRtpReceiver) -> None:
        kind: MediaKind = "video" if track.kind == "video" else "audio"
        if kind == "video":
            self._video_receiver = receiver
        intake = TrackIntake(self.hub, kind, self.meter, self.publish_unit, self.metrics)
        deliver_inline(receiver, intake.receive)

    def publish_unit(self, unit: MediaUnit) -> None:
        self._last_media = time.monotonic()
        if unit.codec == "vp8":
            # Everything downstream takes H.264: the worker publishes its output.
            if self._vp8 is None and self._transcoders is not None:
                self._vp8 = self._transcoders(self.hub)
            if self._vp8 is not None:
                self._vp8.submit(unit)
            return
        self.hub.publish(unit)

    def request_keyframe(self) -> None:
        if self._video_receiver is not None and not self._closed.is_set():
            if self.metrics is not None:
                self.metrics.keyframe_requests.inc()
            self.spawn(send_pli(self._video_receiver), "pli")

    async def _rtp_counts(self) -> tuple[int, int]:
        """(packets received, packets lost) over the session, from the receivers' stats."""
        received = lost = 0
        for transceiver in self.pc.getTransceivers():
            stats = await transceiver.receiver.getStats()
            for s in stats.values():
                if getattr(s, "type", "") == "inbound-rtp":
                    received += getattr(s, "packetsReceived", 0) or 0
                    lost += getattr(s, "packetsLost", 0) or 0
        return received, lost

    async def health(self) -> IngestHealth:
        """This publisher's ingest figures now (livecore.sfu.ingest)."""
        meter = self.meter
        video_bps, audio_bps, fps = meter.rates()
        received, lost = await self._rtp_counts()
        return IngestHealth(
            video_codec=meter.codecs.get("video", ""), audio_codec=meter.codecs.get("audio", ""),
            bitrate_bps=video_bps + audio_bps, video_bitrate_bps=video_bps,
            audio_bitrate_bps=audio_bps, fps=fps, keyframe_interval_s=meter.keyframe_interval_s,
            packets_received=received, packets_lost=max(0, lost),
            last_media_s=self.idle_for_s(),
        )  # fmt: skip

    async def report_loss(self) -> None:
        """Add the packets lost since the last report to the loss counter."""
        if self.metrics is None:
            return
        _, lost = await self._rtp_counts()
        if lost > self._lost_reported:
            self.metrics.packets_lost.inc(lost - self._lost_reported)
            self._lost_reported = lost

    def idle_for_s(self) -> float:
        return time.monotonic() - self._last_media

    async def close(self) -> None:
        """Stop the peer connection and every task of this session (idempotent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        await self.pc.close()
        if self._vp8 is not None:
            await self._vp8.aclose()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()


class Publishers:
    """Owns every publishing session of this process; at most one per stream."""

    def __init__(
        self,
        hubs: HubRegistry,
        settings: SfuConfig,
        on_state: StateCallback | None = None,
        metrics: SfuMetrics | None = None,
        transcoders: TranscoderFactory | None = None,
    ) -> None:
        self._hubs = hubs
        self._transcoders = transcoders
        self._metrics = metrics
        if metrics is not None:
            metrics.publishers.set_function(lambda: len(self._by_id))
        self._settings = settings
        self._on_state = on_state
        self._by_id: dict[str, Publisher] = {}
        self._by_stream: dict[int, Publisher] = {}
        self._lock = asyncio.Lock()
        self._watchdog: asyncio.Task[None] | None = None

    def summary(self, offer_sdp: str) -> OfferSummary:
        return inspect_offer(offer_sdp, want="publish")

    async def start(self, stream_id: int, slug: str, offer_sdp: str) -> PublishSession:
        """Answer a publisher's offer; replaces a running publisher of the same stream.

        Raises OfferError for an unusable offer, before touching any running session.
        """
        summary = inspect_offer(offer_sdp, want="publish", vp8=self._transcoders is not None)
        pc = RTCPeerConnection(rtc_configuration(self._settings))
        try:
            # Transceivers made before the offer is applied carry our codec preferences;
            # aiortc matches them to the offer's m-lines in order.
            for kind in summary.kinds:
                transceiver: RTCRtpTransceiver = pc.addTransceiver(kind, direction="recvonly")
                # VP8 only for a publisher with no H.264 at all: an answer that lists both
                # lets the publisher pick VP8, which would cost a transcode for nothing.
                transceiver.setCodecPreferences(_preferred_codecs(kind, vp8=not summary.has_h264))
            async with self._lock:
                old = self._by_stream.get(stream_id)
                hub = (
                    old.hub
                    if old is not None
                    else self._hubs.open(stream_id, slug, frozenset(summary.kinds))
                )
                publisher = Publisher(
                    hub, pc, self._settings.publisher_idle_timeout_s, self._metrics,
                    self._transcoders,
                )  # fmt: skip

                @pc.on("track")
                def on_track(track: MediaStreamTrack) -> None:
                    receiver = next(
                        t.receiver for t in pc.getTransceivers() if t.receiver.track is track
                    )
                    publisher.on_track(track, receiver)

                @pc.on("connectionstatechange")
                async def on_state() -> None:
                    if pc.connectionState in ("failed", "closed"):
                        if not publisher.closed:
                            logger.warning(
                                "stream %s: publisher connection %s, ending the broadcast",
                                slug, pc.connectionState,
                            )  # fmt: skip
                        await self.stop(publisher.id)

                await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
                answer_dtls_passive(pc)  # GStreamer's RSA certificate: see passthrough
                await pc.setLocalDescription(await pc.createAnswer())
                if old is not None:
                    logger.info("stream %s: new publisher replaces session %s", slug, old.id)
                    await self._drop(old)
                hub.set_keyframe_requester(publisher.request_keyframe)
                self._by_id[publisher.id] = publisher
                self._by_stream[stream_id] = publisher
                self._ensure_watchdog()
        except BaseException:
            await pc.close()
            raise
        if old is None and self._on_state is not None:
            self._on_state(hub, True)
        logger.info("stream %s: publishing, session %s", slug, publisher.id)
        return PublishSession(publisher.id, stream_id, pc.localDescription.sdp)

    def session(self, session_id: str) -> Publisher | None:
        return self._by_id.get(session_id)

    def for_stream(self, stream_id: int) -> Publisher | None:
        return self._by_stream.get(stream_id)

    async def add_candidates(self, session_id: str, sdpfrag: str) -> None:
        """Trickle ICE (RFC 8840 sdpfrag): add the peer's candidates to its session."""
        publisher = self._by_id.get(session_id)
        if publisher is None:
            raise UnknownSession(session_id)
        await add_trickled(publisher.pc, session_id, sdpfrag)

    async def stop(self, session_id: str) -> bool:
        """End a publishing session and its broadcast; False if it is not running."""
        async with self._lock:
            publisher = self._by_id.get(session_id)
            if publisher is None:
                return False
            await self._drop(publisher)
            hub = publisher.hub
            self._hubs.close(hub.stream_id)
        logger.info("stream %s: broadcast ended (session %s)", hub.slug, session_id)
        if self._on_state is not None:
            self._on_state(hub, False)
        return True

    async def _drop(self, publisher: Publisher) -> None:
        self._by_id.pop(publisher.id, None)
        if self._by_stream.get(publisher.hub.stream_id) is publisher:
            del self._by_stream[publisher.hub.stream_id]
        await publisher.close()

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch_idle(), name="publisher-watchdog")

    async def _watch_idle(self) -> None:
        """End publishers whose media stopped (a vanished OBS never sends DELETE)."""
        rounds = 0
        while self._by_id:
            await asyncio.sleep(min(1.0, self._settings.publisher_idle_timeout_s / 4))
            rounds += 1
            for publisher in list(self._by_id.values()):
                if publisher.idle_for_s() > self._settings.publisher_idle_timeout_s:
                    logger.warning("stream %s: no media, ending", publisher.hub.slug)
                    await self.stop(publisher.id)
                elif rounds % 5 == 0:
                    await publisher.report_loss()

    async def close(self) -> None:
        """End every broadcast (shutdown)."""
        for session_id in list(self._by_id):
            await self.stop(session_id)
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
