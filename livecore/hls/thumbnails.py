"""Thumbnails: a JPEG from a keyframe every few seconds, decoded in a worker process.

Decoding is the only way to get a picture out of H.264, and it must never run on the event
loop: the keyframe's bytes go to a process pool, and at most one job per stream is in
flight (a busy pool skips a thumbnail rather than queueing them up).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from livecore.sfu.hub import StreamHub

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Thumbnail:
    jpeg: bytes
    etag: str
    made_at: float


def render_jpeg(annexb_keyframe: bytes, max_width: int) -> bytes:
    """Decode one H.264 keyframe (with its SPS/PPS) and encode it as a JPEG. Runs in a worker
    process: it imports PyAV there and costs tens of milliseconds of CPU."""
    import fractions

    import av

    decoder = av.CodecContext.create("h264", "r")
    frames = list(decoder.decode(av.Packet(annexb_keyframe)))
    frames += list(decoder.decode(None))
    if not frames:
        raise ValueError("the keyframe did not decode")
    frame = frames[0]
    width = min(max_width, frame.width) // 2 * 2
    height = max(2, round(frame.height * width / frame.width) // 2 * 2)
    picture = frame.reformat(width=width, height=height, format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = picture.time_base or fractions.Fraction(1, 25)
    encoder.options = {"qscale": "5"}
    packets = list(encoder.encode(picture)) + list(encoder.encode(None))
    return b"".join(bytes(p) for p in packets)


class Thumbnailer:
    """Keeps the latest thumbnail of one live stream; run() until the broadcast ends."""

    def __init__(
        self,
        hub: StreamHub,
        pool: Callable[[], Awaitable[Executor]],
        *,
        interval_s: float,
        max_width: int = 640,
        on_new: Callable[[int, bytes], None] | None = None,
    ) -> None:
        self._hub = hub
        self._on_new = on_new  # (stream id, JPEG): the screening hook; must not wait
        self._pool = pool
        self._interval_s = interval_s
        self._max_width = max_width
        self.latest: Thumbnail | None = None
        self.failures = 0

    async def run(self) -> None:
        sub = self._hub.subscribe("thumbnails", keyframes_only=True)
        loop = asyncio.get_running_loop()
        job: asyncio.Future[bytes] | None = None
        last = -self._interval_s
        try:
            while (unit := await sub.get()) is not None:
                if job is not None and job.done():
                    self._take(job)
                    job = None
                if unit.kind != "video" or not unit.keyframe or unit.codec != "h264":
                    continue
                now = time.monotonic()
                if job is None and now - last >= self._interval_s:
                    last = now
                    pool = await self._pool()
                    job = loop.run_in_executor(pool, render_jpeg, unit.data, self._max_width)
            if job is not None:
                with contextlib.suppress(Exception):
                    await job
                self._take(job)
        finally:
            self._hub.unsubscribe(sub)

    def _take(self, job: asyncio.Future[bytes]) -> None:
        if job.cancelled():
            return
        if (exc := job.exception()) is not None:
            self.failures += 1
            logger.warning("stream %s: thumbnail failed: %s", self._hub.slug, exc)
            return
        jpeg = job.result()
        etag = '"' + hashlib.blake2b(jpeg, digest_size=12).hexdigest() + '"'
        self.latest = Thumbnail(jpeg, etag, time.time())
        if self._on_new is not None:
            self._on_new(self._hub.stream_id, jpeg)
