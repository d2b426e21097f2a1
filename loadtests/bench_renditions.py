"""CPU cost of one rendition: worker-process CPU seconds per second of 720p -> 360p.

    .venv/bin/python -m loadtests.bench_renditions [--seconds 20] [--rung 360]

Encodes a 1280x720 30 fps H.264 clip here first (a scrolling noise texture over a moving
gradient at 2.5 Mb/s: harder than a flat test card, easier than a noisy camera), then runs
it through a real transcoder worker process (the same `Transcoder` the origin uses) as fast
as the worker takes it, and reads that process's CPU time with psutil. Spawn and codec
start-up are excluded. Prints the core count and the figure; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import os
import time
from collections.abc import Callable

import av
import numpy as np
import psutil

from livecore.sfu.media import VIDEO_CLOCK_HZ, MediaUnit, h264_is_keyframe
from livecore.transcode.spec import EncodedFrame, TranscodeSpec, bitrate_for
from livecore.transcode.transcoder import Transcoder

FPS = 30
WIDTH, HEIGHT = 1280, 720


def make_source(seconds: float) -> list[MediaUnit]:
    """A WebRTC-like 720p source: baseline, no B-frames, in-band SPS/PPS, keyframe each 2 s."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base = fractions.Fraction(1, VIDEO_CLOCK_HZ)
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.bit_rate = 2_500_000
    ctx.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "x264-params": f"keyint={2 * FPS}:min-keyint={2 * FPS}:scenecut=0:repeat-headers=1",
    }
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (HEIGHT, WIDTH * 2), dtype=np.uint8)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    units: list[MediaUnit] = []
    step = VIDEO_CLOCK_HZ // FPS
    for i in range(round(seconds * FPS)):
        luma = (texture[:, 3 * i % WIDTH : 3 * i % WIDTH + WIDTH] // 2 + (xx + 4 * i) // 8) & 255
        img = np.stack([luma, (yy + 2 * i) & 255, luma[::-1]], -1).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = i * step, ctx.time_base
        for p in ctx.encode(frame):
            data = bytes(p)
            assert p.pts is not None
            units.append(
                MediaUnit("video", "h264", data, p.pts, VIDEO_CLOCK_HZ, h264_is_keyframe(data))
            )
    return units


async def measure(units: list[MediaUnit], rung: int) -> tuple[float, float, float]:
    """(worker CPU seconds, wall seconds, spawn-to-ready seconds) for all of `units`."""
    frames: list[EncodedFrame] = []
    progress = asyncio.Event()

    def on_output(out: list[EncodedFrame]) -> None:
        frames.extend(out)
        progress.set()

    def on_crash(why: str) -> None:
        print("worker crashed:", why)
        progress.set()

    async def until(done: Callable[[], bool]) -> None:
        while not done() and not transcoder.crashed:
            progress.clear()
            await progress.wait()

    transcoder = Transcoder(
        TranscodeSpec("h264", rung, bitrate_for(rung)), name="bench", on_output=on_output,
        on_crash=on_crash,
    )  # fmt: skip
    spawned = time.monotonic()
    transcoder.start()
    try:
        # Start-up (spawn, import av, the encoder's first frame) is not part of the figure.
        assert transcoder.submit(units[0])
        await until(lambda: bool(frames))
        ready_s = time.monotonic() - spawned
        assert transcoder.pid is not None
        worker = psutil.Process(transcoder.pid)
        before = worker.cpu_times()
        started = time.monotonic()
        for unit in units[1:]:
            # As fast as the worker goes, a few units ahead so it never waits on the pipe.
            await until(lambda: transcoder.in_flight < 8)
            assert transcoder.submit(unit), transcoder.refusal
        await until(lambda: transcoder.in_flight == 0)
        wall = time.monotonic() - started
        after = worker.cpu_times()
        await transcoder.finish()
    finally:
        await transcoder.aclose()
    cpu = (after.user + after.system) - (before.user + before.system)
    return cpu, wall, ready_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="media seconds to transcode")
    parser.add_argument("--rung", type=int, default=360, help="output height")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}")
    print(f"encoding a {args.seconds:g} s {WIDTH}x{HEIGHT} source clip ...")
    units = make_source(args.seconds)
    cpu, wall, ready_s = asyncio.run(measure(units, args.rung))
    media_s = (len(units) - 1) / FPS
    print(f"worker start-up (spawn to first frame): {ready_s:.2f} s")
    print(
        f"720p -> {args.rung}p: {cpu:.2f} worker CPU s for {media_s:.1f} s of video = "
        f"{cpu / media_s:.3f} CPU s per second ({media_s / wall:.1f}x real time on one worker)"
    )


if __name__ == "__main__":
    main()
