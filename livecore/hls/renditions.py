"""Renditions: the lower rungs of a live stream's ladder ("720p", "480p", "360p").

A `Rendition` reads the source hub, has its video transcoded by a worker process
(`transcode/transcoder.py`) and publishes the encoded frames, with the source's Opus audio passed
through as-is, into a hub of its own, which an ordinary `Packager` packages like the source.
A rendition never slows the source: when its worker falls behind or dies, the rendition is
dropped (its playlist ends, it leaves the master playlist, it is logged and counted).

May import: config, hls/, transcode/, sfu (the hub reader API and MediaUnit only).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from pathlib import Path
from typing import Literal

from livecore.config import HlsConfig
from livecore.hls import h264
from livecore.hls.metrics import DropReason, HlsMetrics
from livecore.hls.packager import Packager
from livecore.hls.packaging import WorkerLink
from livecore.sfu.hub import StreamHub
from livecore.sfu.media import VIDEO_CLOCK_HZ, MediaUnit
from livecore.transcode.spec import EncodedFrame, InputCodec, TranscodeSpec, bitrate_for
from livecore.transcode.transcoder import Transcoder

logger = logging.getLogger(__name__)

State = Literal["waiting", "running", "ended", "skipped", "dropped"]

_RUNG = re.compile(r"([1-9][0-9]{2,3})p")
# Audio waits for the video encoded alongside it, so the rendition's hub carries both tracks
# in order as a publisher would; the in-flight window bounds the wait. This bounds the queue
# even if that bound were ever lifted.
_MAX_HELD_AUDIO = 500
_TRANSCODABLE = ("h264", "vp8")


def rung_height(name: str) -> int:
    """The picture height of a ladder rung such as "360p"."""
    match = _RUNG.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a rendition like '360p'")
    return int(match.group(1))


def vp8_picture_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header (RFC 6386 9.1), None if it is not one."""
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return width, height


def picture_size(unit: MediaUnit) -> tuple[int, int] | None:
    """The size of a video keyframe's picture, None when the unit does not say."""
    if unit.codec == "vp8":
        return vp8_picture_size(unit.data)
    sets = h264.parameter_sets(unit.data) if unit.codec == "h264" else None
    if sets is None:
        return None
    try:
        return h264.picture_size(sets[0])
    except ValueError:
        return None


class Rendition:
    """One rung of one broadcast, packaged into `directory` as rendition `name`.

    Construct it when the source hub opens, next to the source's packager: both subscribe at
    the same moment, so both start at the same keyframe and cut segments at the same points.
    `run()` (in a task the caller owns) returns once the rendition's recording is on disk;
    `stop()` ends it early. A rung at or above the source's height is skipped (never
    upscaled).
    """

    def __init__(
        self,
        source: StreamHub,
        name: str,
        directory: Path,
        config: HlsConfig,
        *,
        metrics: HlsMetrics | None = None,
        sequence_base: int = 0,
        max_in_flight: int = 150,
        max_lag_s: float = 2.0,
        spec: TranscodeSpec | None = None,
        link: WorkerLink | None = None,
    ) -> None:
        self.name = name
        self.height = rung_height(name)
        self.state: State = "waiting"
        self.drop_reason: DropReason | None = None
        self.source_size: tuple[int, int] | None = None
        self.transcoder: Transcoder | None = None
        self._source = source
        self._metrics = metrics
        self._max_in_flight = max_in_flight
        self._max_lag_s = max_lag_s
        self._spec = spec
        self._sub = source.subscribe(f"rendition-{name}")
        self._hub = StreamHub(source.stream_id, f"{source.slug}/{name}", queue_size=10_000)
        # A reader of the rendition needing a keyframe needs one from the publisher.
        self._hub.set_keyframe_requester(source.request_keyframe)
        self.packager = Packager(
            self._hub.subscribe("hls"), directory, config, slug=f"{source.slug}/{name}",
            metrics=metrics, sequence_base=sequence_base, link=link,
        )  # fmt: skip
        self._audio: deque[MediaUnit] = deque()
        self._published_any = False

    @property
    def listed(self) -> bool:
        """Whether the master playlist lists it: it was not dropped, and its playlist has a
        complete segment (a player cannot start on parts alone)."""
        return self.state in ("running", "ended") and self.packager.ready

    async def run(self) -> None:
        """Transcode and package until the broadcast ends or the rendition is dropped."""
        self.packager.start()
        try:
            await self._transcode()
        except asyncio.CancelledError:
            self.stop()  # no flush: stop the worker at once
            raise
        except Exception:
            logger.exception("rendition %s/%s failed", self._source.slug, self.name)
            self._drop("crashed")
        finally:
            self._source.unsubscribe(self._sub)
            try:
                if self.transcoder is not None:
                    if self.state == "running":
                        await self.transcoder.finish()  # its last frames come out here
                    else:
                        await self.transcoder.aclose()
                if self.state in ("running", "ended"):
                    self.state = "ended"
                    self._release_audio(None)
            finally:
                self._hub.end()  # the packager flushes and writes EXT-X-ENDLIST
                await self.packager.wait_closed()

    def stop(self) -> None:
        """End now (at shutdown, not counted as a drop); run() then cleans up."""
        if self.state in ("waiting", "running"):
            self.state = "ended"
        self._end_input()

    # -- the loop ---------------------------------------------------------------------------

    async def _transcode(self) -> None:
        key = await self._first_keyframe()
        if key is None:
            return
        size = self.source_size = picture_size(key)
        assert size is not None
        slug = self._source.slug
        if self.height >= size[1]:
            self.state = "skipped"
            logger.info("stream %s: %s skipped, the source is %dx%d", slug, self.name, *size)
            return
        codec: InputCodec = "vp8" if key.codec == "vp8" else "h264"
        spec = self._spec or TranscodeSpec(codec, self.height, bitrate_for(self.height))
        self.transcoder = Transcoder(
            spec, name=f"{slug}/{self.name}", on_output=self._on_output,
            on_crash=lambda _why: self._drop("crashed"), label=self.name,
            metrics=self._metrics.transcoding if self._metrics is not None else None,
            max_in_flight=self._max_in_flight, max_lag_s=self._max_lag_s,
        )  # fmt: skip
        self.state = "running"
        self.transcoder.start()
        self._offer(key)
        while self.state == "running" and (unit := await self._sub.get()) is not None:
            if self._sub.dropped:
                # Our own queue overflowed: units are lost, the output would not be aligned.
                self._drop("behind", f"{self._sub.dropped} source units lost")
                return
            self._offer(unit)

    async def _first_keyframe(self) -> MediaUnit | None:
        """Skip to the source packager's first keyframe: the first one with a picture size."""
        while self.state == "waiting" and (unit := await self._sub.get()) is not None:
            if unit.kind == "audio":
                self._maybe_date(unit)
                continue
            if unit.keyframe and unit.codec in _TRANSCODABLE and picture_size(unit) is not None:
                return unit
        return None

    def _offer(self, unit: MediaUnit) -> None:
        transcoder = self.transcoder
        assert transcoder is not None
        if unit.kind == "audio":
            if unit.codec != "opus" or self._maybe_date(unit):
                return
            self._audio.append(unit)
            self._release_audio(transcoder.oldest_pending_pts)
        elif unit.codec in _TRANSCODABLE and not transcoder.submit(unit):
            self._drop("behind", transcoder.refusal)

    def _maybe_date(self, audio: MediaUnit) -> bool:
        """Hand the first audio unit over at once, if nothing else went first; True if so.

        The packager dates segments (PROGRAM-DATE-TIME) from when its first unit arrives.
        Audio is not delayed by the worker, so the rendition's packager gets its first unit
        when the source's packager does, and both date their segments alike.
        """
        if self._published_any:
            return False
        self._published_any = True
        self._hub.publish(audio)
        return True

    def _on_output(self, frames: list[EncodedFrame]) -> None:
        if self.state != "running":
            return
        for frame in frames:
            self._published_any = True
            self._hub.publish(
                MediaUnit("video", "h264", frame.data, frame.pts, VIDEO_CLOCK_HZ, frame.keyframe)
            )
        if self._metrics is not None and frames:
            self._metrics.transcode_frames.labels(self.name).inc(len(frames))
        assert self.transcoder is not None
        self._release_audio(self.transcoder.oldest_pending_pts)

    def _release_audio(self, horizon_pts: int | None) -> None:
        """Publish held audio older than the oldest video still in the worker (all of it when
        none is); video before that horizon has already been published."""
        audio = self._audio
        horizon_s = None if horizon_pts is None else horizon_pts / VIDEO_CLOCK_HZ
        while audio and (
            horizon_s is None or audio[0].pts_s < horizon_s or len(audio) > _MAX_HELD_AUDIO
        ):
            self._hub.publish(audio.popleft())

    # -- ending -----------------------------------------------------------------------------

    def _drop(self, reason: DropReason, detail: str = "") -> None:
        if self.state not in ("waiting", "running"):
            return
        self.state = "dropped"
        self.drop_reason = reason
        if self._metrics is not None:
            self._metrics.renditions_dropped.labels(reason).inc()
        logger.warning(
            "stream %s: rendition %s dropped (%s%s)",
            self._source.slug, self.name, reason, f": {detail}" if detail else "",
        )  # fmt: skip
        self._end_input()

    def _end_input(self) -> None:
        # Leave the source hub at once, and wake the loop (waiting in get()) with the end.
        self._source.unsubscribe(self._sub)
        self._sub.end()
        if self.state == "dropped":
            self._audio.clear()
