"""VP8 publishers: their video becomes H.264 at its own size in a worker process, so that
every reader of the hub (packager, renditions, WHEP viewers, thumbnails) gets H.264. The
publisher's side (`sfu/vp8.py`) hands it the VP8 units and publishes what comes out."""

from __future__ import annotations

import logging
from collections.abc import Callable

from livecore.transcode.metrics import TranscodeMetrics
from livecore.transcode.spec import EncodedFrame, TranscodeSpec, VideoUnit, bitrate_for
from livecore.transcode.transcoder import Transcoder

logger = logging.getLogger(__name__)


class SourceTranscode:
    """One publisher's VP8 to H.264. `on_output` gets the encoded frames on the loop, in
    order; `request_keyframe` asks the publisher for a keyframe (the worker starts at one)."""

    def __init__(
        self,
        slug: str,
        *,
        on_output: Callable[[list[EncodedFrame]], None],
        request_keyframe: Callable[[], None],
        metrics: TranscodeMetrics | None = None,
    ) -> None:
        self._slug = slug
        self._request_keyframe = request_keyframe
        self._transcoder = Transcoder(
            # The source size is kept; 720p's bit rate suits the cameras browsers send.
            TranscodeSpec("vp8", None, bitrate_for(720)),
            name=f"{slug}/source",
            on_output=on_output,
            on_crash=self._crashed,
            label="source",
            metrics=metrics,
        )
        self._started = False
        self.dropped = 0

    def submit(self, unit: VideoUnit) -> bool:
        if not self._started:
            if not unit.keyframe:
                self._request_keyframe()  # the worker must start at a keyframe
                return False
            self._transcoder.start()
            self._started = True
        if not self._transcoder.submit(unit):
            self.dropped += 1
            return False
        return True

    def _crashed(self, why: str) -> None:
        # The broadcast goes on with its audio; the publisher may reconnect for video.
        logger.error("stream %s: VP8 transcoder failed (%s)", self._slug, why)

    async def aclose(self) -> None:
        await self._transcoder.aclose()
