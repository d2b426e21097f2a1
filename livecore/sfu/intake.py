"""Received tracks into the hub's media: each frame aiortc's receiver reassembles becomes a
MediaUnit on the stream's one timeline, counted for the ingest figures and metrics.

May import: sfu/, leaf modules.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from livecore.sfu.hub import StreamHub
from livecore.sfu.ingest import IngestMeter
from livecore.sfu.media import MediaKind, MediaUnit, h264_is_keyframe, vp8_is_keyframe
from livecore.sfu.metrics import SfuMetrics
from livecore.sfu.passthrough import EncodedFrame


class Timeline:
    """Maps one track's RTP timestamps onto the hub's timeline, never going backwards."""

    def __init__(self, hub: StreamHub, kind: MediaKind, clock_hz: int) -> None:
        self._hub = hub
        self._kind = kind
        self._clock_hz = clock_hz
        self._offset: int | None = None

    def pts(self, rtp_timestamp: int) -> int:
        if self._offset is None:
            # Both tracks start at 0 with their own first packet; anchoring each to its
            # arrival time on the hub's clock keeps audio and video in step.
            now = round((time.monotonic() - self._hub.stats.started_at) * self._clock_hz)
            floor = self._hub.last_pts(self._kind) + 1
            self._offset = max(now, floor) - rtp_timestamp
        return rtp_timestamp + self._offset


class TrackIntake:
    """One received track: turns each frame the receiver reassembles into a MediaUnit on the
    hub's timeline. Runs on the loop inside aiortc's packet handler, so it never waits."""

    def __init__(
        self,
        hub: StreamHub,
        kind: MediaKind,
        meter: IngestMeter,
        publish: Callable[[MediaUnit], None],
        metrics: SfuMetrics | None = None,
    ) -> None:
        self._hub = hub
        self._kind = kind
        self._meter = meter
        self._publish = publish
        self._timeline: Timeline | None = None
        self._units = metrics.units.labels(kind) if metrics is not None else None
        self._bytes = metrics.bytes.labels(kind) if metrics is not None else None
        self._keyframe_interval = metrics.keyframe_interval if metrics is not None else None

    def receive(self, frame: EncodedFrame) -> None:
        kind = self._kind
        if self._timeline is None:
            self._timeline = Timeline(self._hub, kind, frame.clock_hz)
        if frame.codec == "h264":
            keyframe = h264_is_keyframe(frame.data)
        elif frame.codec == "vp8":
            keyframe = vp8_is_keyframe(frame.data)
        else:
            keyframe = kind == "audio"
        self._meter.record(kind, frame.codec, len(frame.data), keyframe)
        if self._units is not None and self._bytes is not None:
            self._units.inc()
            self._bytes.inc(len(frame.data))
        last_keyframe_at = self._hub.stats.last_keyframe_at
        if (
            self._keyframe_interval is not None
            and keyframe
            and kind == "video"
            and last_keyframe_at
        ):
            self._keyframe_interval.observe(time.monotonic() - last_keyframe_at)
        self._publish(
            MediaUnit(kind, frame.codec, frame.data, self._timeline.pts(frame.timestamp),
                      frame.clock_hz, keyframe)
        )  # fmt: skip
