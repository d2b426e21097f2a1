"""VP8 publishers: their video becomes H.264 at its own size in a worker process, so that
every reader of the hub (packager, renditions, WHEP viewers, thumbnails) gets H.264."""

from __future__ import annotations

import logging

from livecore.hls.metrics import HlsMetrics
from livecore.hls.transcoder import EncodedFrame, Transcoder, TranscodeSpec, bitrate_for
from livecore.sfu.hub import StreamHub
from livecore.sfu.media import VIDEO_CLOCK_HZ, MediaUnit

logger = logging.getLogger(__name__)


class SourceTranscode:
    """Implements sfu.publisher.VideoTranscoder for one publisher sending VP8."""

    def __init__(self, hub: StreamHub, metrics: HlsMetrics | None = None) -> None:
        self._hub = hub
        self._transcoder = Transcoder(
            # The source size is kept; 720p's bit rate suits the cameras browsers send.
            TranscodeSpec("vp8", None, bitrate_for(720)),
            name=f"{hub.slug}/source",
            on_output=self._publish,
            on_crash=self._crashed,
            label="source",
            metrics=metrics,
        )
        self._started = False
        self.dropped = 0

    def submit(self, unit: MediaUnit) -> bool:
        if not self._started:
            if not unit.keyframe:
                self._hub.request_keyframe()  # the worker must start at a keyframe
                return False
            self._transcoder.start()
            self._started = True
        if not self._transcoder.submit(unit):
            self.dropped += 1
            return False
        return True

    def _publish(self, frames: list[EncodedFrame]) -> None:
        for frame in frames:
            self._hub.publish(
                MediaUnit("video", "h264", frame.data, frame.pts, VIDEO_CLOCK_HZ, frame.keyframe)
            )

    def _crashed(self, why: str) -> None:
        # The broadcast goes on with its audio; the publisher may reconnect for video.
        logger.error("stream %s: VP8 transcoder failed (%s)", self._hub.slug, why)

    async def aclose(self) -> None:
        await self._transcoder.aclose()
