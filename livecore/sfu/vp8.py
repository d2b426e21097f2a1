"""VP8 publishers' video, made H.264 before it reaches the hub: everything downstream
(packager, renditions, WHEP viewers, thumbnails) takes H.264. The work runs in a worker
process (`transcode/source.py`); this module is the publisher's side of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from livecore.sfu.hub import StreamHub
from livecore.sfu.media import VIDEO_CLOCK_HZ, MediaUnit
from livecore.transcode.metrics import TranscodeMetrics
from livecore.transcode.source import SourceTranscode
from livecore.transcode.spec import EncodedFrame


class VideoTranscoder(Protocol):
    """Turns a publisher's VP8 into H.264 that it publishes into the hub (a worker process)."""

    def submit(self, unit: MediaUnit) -> bool:
        """Never waits; False when the worker is behind or gone (the unit is dropped)."""
        ...

    async def aclose(self) -> None: ...


# Makes the transcoder for a hub whose publisher sends VP8; None: VP8 is refused.
TranscoderFactory = Callable[[StreamHub], VideoTranscoder]


def source_transcoders(metrics: TranscodeMetrics | None = None) -> TranscoderFactory:
    """Transcoders in worker processes that publish their H.264 into the publisher's hub."""

    def make(hub: StreamHub) -> VideoTranscoder:
        def publish(frames: list[EncodedFrame]) -> None:
            for frame in frames:
                hub.publish(
                    MediaUnit(
                        "video", "h264", frame.data, frame.pts, VIDEO_CLOCK_HZ, frame.keyframe
                    )
                )

        return SourceTranscode(
            hub.slug, on_output=publish, request_keyframe=hub.request_keyframe, metrics=metrics
        )

    return make
