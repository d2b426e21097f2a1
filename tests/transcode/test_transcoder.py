"""A transcoder worker process on its own: VP8 in, H.264 out at the source's size, with the
input's pts and keyframes. Media is made here with PyAV and read back with PyAV."""

from __future__ import annotations

import asyncio

import av

from livecore.hls import h264
from livecore.hls.renditions import vp8_picture_size
from livecore.transcode.spec import EncodedFrame, TranscodeSpec
from livecore.transcode.transcoder import Transcoder
from tests.support.media import encode_vp8


def _decode_h264(frames: list[EncodedFrame]) -> list[tuple[int, int]]:
    decoder = av.CodecContext.create("h264", "r")
    sizes = []
    for f in frames:
        for picture in decoder.decode(av.Packet(f.data)):
            sizes.append((picture.width, picture.height))
    return sizes + [(p.width, p.height) for p in decoder.decode(None)]


async def test_vp8_input_becomes_h264_at_the_source_size() -> None:
    vp8 = await asyncio.to_thread(encode_vp8, 60, 640, 360, 30)
    assert vp8_picture_size(vp8[0].data) == (640, 360)
    out: list[EncodedFrame] = []
    crashes: list[str] = []
    transcoder = Transcoder(
        TranscodeSpec("vp8", None, 800_000), name="vp8", on_output=out.extend,
        on_crash=crashes.append,
    )  # fmt: skip
    transcoder.start()
    try:
        for unit in vp8:
            assert transcoder.submit(unit), transcoder.refusal
        await transcoder.finish()
    finally:
        await transcoder.aclose()
    assert not crashes and transcoder.exitcode == 0
    assert [f.pts for f in out] == [u.pts for u in vp8]
    assert [f.pts for f in out if f.keyframe] == [u.pts for u in vp8 if u.keyframe]
    first = h264.parameter_sets(out[0].data)
    assert first is not None and h264.picture_size(first[0]) == (640, 360)
    assert all(h264.parameter_sets(f.data) is not None for f in out if f.keyframe)
    assert await asyncio.to_thread(_decode_h264, out) == [(640, 360)] * len(vp8)
