from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor

import av
import pytest

from livecore.hls.thumbnails import Thumbnailer
from livecore.sfu.hub import StreamHub
from livecore.transcode.workers import _start_sync
from tests.support.media import clip


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    executor = _start_sync(1)
    yield executor
    executor.shutdown()


def _getter(pool: ProcessPoolExecutor) -> Callable[[], Awaitable[Executor]]:
    async def get() -> Executor:
        return pool

    return get


def _jpeg_size(jpeg: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(jpeg), "r", format="mjpeg") as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


async def test_thumbnail_is_a_jpeg_of_a_keyframe(pool: ProcessPoolExecutor) -> None:
    hub = StreamHub(1, "thumbs")
    thumbnailer = Thumbnailer(hub, _getter(pool), interval_s=0.0, max_width=320)
    task = asyncio.create_task(thumbnailer.run())
    await asyncio.sleep(0)
    for unit in clip().interleaved()[:120]:
        hub.publish(unit)
        await asyncio.sleep(0)
    hub.end()
    await asyncio.wait_for(task, 30)
    assert thumbnailer.latest is not None
    assert thumbnailer.latest.jpeg.startswith(b"\xff\xd8")
    size = await asyncio.to_thread(_jpeg_size, thumbnailer.latest.jpeg)
    assert size == (320, 180)
    assert thumbnailer.failures == 0


async def test_broken_keyframe_counts_a_failure_and_keeps_going(
    pool: ProcessPoolExecutor,
) -> None:
    from livecore.sfu.media import MediaUnit

    hub = StreamHub(2, "broken")
    thumbnailer = Thumbnailer(hub, _getter(pool), interval_s=0.0)
    task = asyncio.create_task(thumbnailer.run())
    await asyncio.sleep(0)
    garbage = b"\x00\x00\x00\x01\x65" + b"\xff" * 64
    hub.publish(MediaUnit("video", "h264", garbage, 0, 90_000, True))
    hub.end()
    await asyncio.wait_for(task, 30)
    assert thumbnailer.latest is None
    assert thumbnailer.failures == 1
