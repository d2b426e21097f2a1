"""Glass-to-glass latency of a browser publish played with hls.js, read off a pixel clock.

    .venv/bin/python -m loadtests.bench_glass [--seconds S] [--warmup W] [--runs N]

It starts its own `livecore serve` (embedded PostgreSQL in a temporary directory, 127.0.0.1
on a free port, ICE host candidates restricted to 127.0.0.1, livecore's default HLS
settings unless --part-target/--segment-target say otherwise) and headless Chromium, as the
browser tests do (Debian's Chromium, driven by Playwright, WebRTC on loopback only).

- The publisher page draws the wall clock (Date.now(), 32 bits of milliseconds as black and
  white blocks) into a canvas about every 5 ms and publishes the canvas (30 fps) and the fake
  microphone over WHIP with livecore's own whip.js, as the studio's "Go live" does: H.264 from
  Chromium's encoder, which sends keyframes only when asked.
- The viewer page, in another browser context, starts hls.js as soon as the publish is
  answered, with the options of the /watch page (static/player.js), on the master
  playlist. For every frame it presents (requestVideoFrameCallback) it reads the blocks back
  and takes Date.now() minus the clock in the picture: capture, encoding, WebRTC, packaging,
  HLS delivery, decoding and presentation, all of it.

Over the window after --warmup it prints p50/p90/p99/max of those latencies, the stalls
(`waiting` events after the first frame) and hls.js's errors; then the core count and load,
since the publisher, the viewer and the server share this machine. Every phase is bounded in
time (--seconds at most 300, --runs at most 10).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import av

from loadtests.server import free_port, post_json, start_server, stop_server

if TYPE_CHECKING:  # Playwright is imported only when a browser is started (see _one_run)
    from playwright.async_api import Route

PASSWORD = "benchmark passphrase"
MAX_SECONDS = 300.0

_CLOCK = """
const W = 640, H = 360, BLOCK = 20, ROW = 40;  // 32 blocks of 20 px across the top
"""

_PUBLISHER = (
    """<!doctype html>
<meta charset="utf-8"><title>bench publisher</title>
<canvas id="c" width="640" height="360"></canvas>
<script>
"""
    + _CLOCK
    + """
const g = document.getElementById("c").getContext("2d");
function draw() {
  const now = Date.now();
  g.fillStyle = "#405060";
  g.fillRect(0, 0, W, H);
  g.fillStyle = `hsl(${(now / 20) % 360}, 70%, 50%)`;  // some motion, as a camera has
  g.fillRect((now / 4) % W, 100, 80, 200);
  const t = now % 4294967296;
  for (let i = 0; i < 32; i++) {
    g.fillStyle = Math.floor(t / 2 ** (31 - i)) % 2 ? "#fff" : "#000";
    g.fillRect(i * BLOCK, 0, BLOCK, ROW);
  }
}
setInterval(draw, 5);
window.goLive = async (url, key) => {
  const { publish } = await import("/static/whip.js");
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  const video = document.getElementById("c").captureStream(30).getVideoTracks();
  const stream = new MediaStream([...video, ...mic.getAudioTracks()]);
  window.session = await publish(url, key, stream);
  return window.session.h264;
};
</script>
"""
)

_VIEWER = (
    """<!doctype html>
<meta charset="utf-8"><title>bench viewer</title>
<video id="v" muted autoplay playsinline></video>
<canvas id="strip" width="640" height="40"></canvas>
<script src="/static/vendor/hls.min.js"></script>
<script type="module">
"""
    + _CLOCK
    + """
import { keepLive, liveOptions } from "/static/player.js";
const v = document.getElementById("v");
const g = document.getElementById("strip").getContext("2d", { willReadFrequently: true });
const samples = [], stalls = [], errors = [];
let first = 0;
function clockIn(frame) {
  g.drawImage(v, 0, 0, v.videoWidth, (v.videoHeight * ROW) / H, 0, 0, W, ROW);
  const px = g.getImageData(0, 0, W, ROW).data;
  let t = 0;
  for (let i = 0; i < 32; i++) {
    const at = ((ROW / 2) * W + i * BLOCK + BLOCK / 2) * 4;
    t = t * 2 + (px[at] + px[at + 1] + px[at + 2] > 3 * 128 ? 1 : 0);
  }
  return t;
}
function onFrame() {
  const now = Date.now();
  const shown = clockIn();
  const latency = (now % 4294967296) - shown;
  if (latency >= 0 && latency < 60000) samples.push([now, latency]);
  if (!first) first = now;
  v.requestVideoFrameCallback(onFrame);
}
v.addEventListener("waiting", () => { if (first) stalls.push(Date.now()); });
window.play = (source) => {
  const hls = new Hls(liveOptions);
  hls.on(Hls.Events.ERROR, (_e, d) => errors.push(`${d.details}${d.fatal ? " (fatal)" : ""}`));
  hls.loadSource(source);
  hls.attachMedia(v);
  v.play().catch(() => {});
  v.requestVideoFrameCallback(onFrame);
  keepLive(hls, v);
  window.hls = hls;
};
window.bench = () => ({
  samples: samples.splice(0), stalls: stalls.splice(0), errors: errors.splice(0), first,
  height: v.videoHeight, level: window.hls ? window.hls.currentLevel : -1,
  target: window.hls ? window.hls.targetLatency || 0 : 0,
  latency: window.hls ? window.hls.latency || 0 : 0,
  ahead: v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0,
  rate: v.playbackRate,
});
</script>
"""
)


@dataclass
class Run:
    latency_ms: list[float] = field(default_factory=list)
    # Wall clock when a part is listed minus the clock drawn in its last frame: how far the
    # server's live edge is behind the publisher's canvas.
    edge_ms: list[float] = field(default_factory=list)
    stalls: int = 0
    errors: list[str] = field(default_factory=list)
    first_frame_s: float | None = None  # from the publish being answered
    height: int = 0
    target_latency_s: float = 0.0
    hls_latency_s: list[float] = field(default_factory=list)  # hls.js's own estimate
    ahead_s: list[float] = field(default_factory=list)  # buffered ahead of the playhead


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _answer(html: str) -> Callable[[Route], Awaitable[None]]:
    """A route handler answering with `html` (the page never reaches livecore)."""

    async def fulfill(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body=html)

    return fulfill


_BLOCK, _ROW = 20, 40


def _clock_ms(frame: av.VideoFrame) -> int:
    """The clock drawn in a frame (32 bits of Date.now() milliseconds)."""
    rgb = frame.to_ndarray(format="rgb24")
    scale = frame.height / 360
    value = 0
    for i in range(32):
        y, x = int(_ROW / 2 * scale), int((i * _BLOCK + _BLOCK / 2) * scale)
        value = value * 2 + int(int(rgb[y, x].sum()) > 3 * 128)
    return value


async def _follow_edge(base: str, slug: str, until: float, window_start: float) -> list[float]:
    """Follow the source playlist with blocking reloads, fetch every new part, decode it and
    compare its last frame's drawn clock with the wall clock at listing."""
    lags: list[float] = []
    decoder = _PartDecoder()
    init = b""
    seen: set[str] = set()
    hint = ""
    async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=10)) as http:
        while time.time() < until:
            query = ""
            if m := re.search(r'PRELOAD-HINT:TYPE=PART,URI="part-(\d+)-(\d+)', hint):
                query = f"?_HLS_msn={m[1]}&_HLS_part={m[2]}"
            async with http.get(f"/hls/{slug}/source/index.m3u8{query}") as resp:
                if resp.status != 200:
                    await asyncio.sleep(0.2)
                    continue
                hint = await resp.text()
            listed_ms = time.time() * 1000
            if not init and (m := re.search(r'#EXT-X-MAP:URI="([^"]+)"', hint)):
                async with http.get(f"/hls/{slug}/source/{m[1]}") as resp:
                    init = await resp.read()
            parts = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', hint)
            if not seen:
                seen.update(parts)  # start at the edge: parts listed from now on, in order
                continue
            new = [p for p in parts if p not in seen]
            if not init or not new:
                continue
            for name in new:
                seen.add(name)
                async with http.get(f"/hls/{slug}/source/{name}") as resp:
                    part = await resp.read()
                frames = await asyncio.to_thread(decoder.decode, init, part)
                if frames and name == new[-1] and listed_ms / 1000 >= window_start:
                    lags.append(listed_ms % 4294967296 - _clock_ms(frames[-1]))
    return [lag for lag in lags if 0 <= lag < 60000]


class _PartDecoder:
    """Decodes the parts of one rendition in order, from its first keyframe on (frames
    decoded from the middle of a GOP are garbage, and so would be their clocks)."""

    def __init__(self) -> None:
        self._codec: av.VideoCodecContext | None = None

    def decode(self, init: bytes, part: bytes) -> list[av.VideoFrame]:
        frames: list[av.VideoFrame] = []
        with av.open(io.BytesIO(init + part), "r", format="mp4") as container:
            if not container.streams.video:
                return frames
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                if self._codec is None:
                    if not packet.is_keyframe:
                        continue
                    self._codec = av.CodecContext.create("h264", "r")
                    self._codec.extradata = stream.codec_context.extradata
                with contextlib.suppress(av.FFmpegError):  # a damaged picture: skip it
                    frames += self._codec.decode(packet)
        return frames


async def _one_run(base: str, slug: str, key: str, seconds: float, warmup: float) -> Run:
    from playwright.async_api import async_playwright

    from tests.web.browser import CHROMIUM, LAUNCH_ARGS

    run = Run()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(LAUNCH_ARGS), headless=True
        )
        try:
            pages = []
            for path, html in (("publisher", _PUBLISHER), ("viewer", _VIEWER)):
                context = await browser.new_context(base_url=base)
                page = await context.new_page()
                url = f"{base}/__bench/{path}"
                await page.route(url, _answer(html))
                await page.goto(url)
                pages.append(page)
            publisher, viewer = pages
            await viewer.wait_for_function("() => typeof window.play === 'function'")
            if not await publisher.evaluate(
                "([u, k]) => window.goLive(u, k)", [f"{base}/whip/{slug}", key]
            ):
                run.errors.append("Chromium published no H.264")
            answered = time.time()
            await viewer.evaluate("(src) => window.play(src)", f"/hls/{slug}/master.m3u8")
            window_start = answered + warmup
            deadline = window_start + seconds
            edge = asyncio.create_task(_follow_edge(base, slug, deadline, window_start))
            while (now := time.time()) < deadline:
                await asyncio.sleep(min(1.0, deadline - now))
                got: dict[str, Any] = await viewer.evaluate("window.bench()")
                if got["first"] and run.first_frame_s is None:
                    run.first_frame_s = got["first"] / 1000 - answered
                run.errors += got["errors"]
                run.height = got["height"]
                run.target_latency_s = got["target"]
                if time.time() < window_start:
                    continue
                run.latency_ms += [lat for at, lat in got["samples"] if at / 1000 >= window_start]
                run.hls_latency_s.append(got["latency"])
                run.ahead_s.append(got["ahead"])
                run.stalls += sum(1 for at in got["stalls"] if at / 1000 >= window_start)
            run.edge_ms = await edge
            await publisher.evaluate("window.session.stop()")
        finally:
            await browser.close()
    return run


async def _bench(base: str, args: argparse.Namespace) -> list[Run]:
    email = f"glass-{time.time_ns()}@example.com"
    body = {"email": email, "password": PASSWORD, "display_name": "Glass", "creator": True}
    token = (await asyncio.to_thread(post_json, f"{base}/api/v1/auth/register", body))["token"]
    runs = []
    for i in range(args.runs):
        slug = f"glass-{i}"
        made = await asyncio.to_thread(post_json, f"{base}/api/v1/streams", {"slug": slug}, token)
        runs.append(await _one_run(base, slug, made["stream_key"], args.seconds, args.warmup))
    return runs


def _report(runs: list[Run]) -> None:
    for i, run in enumerate(runs, 1):
        lat = run.latency_ms
        first = f"{run.first_frame_s:.2f} s" if run.first_frame_s is not None else "never"
        head = f"run {i}: first frame {first} after the publish was answered"
        if not lat:
            print(f"{head}; no frame read in the window; errors: {run.errors}")
            continue
        print(
            f"{head}; {len(lat)} frames read, glass to glass p50 {_pct(lat, 50):.0f} ms,"
            f" p90 {_pct(lat, 90):.0f} ms, p99 {_pct(lat, 99):.0f} ms, max {max(lat):.0f} ms;"
            f" stalls {run.stalls}; played {run.height}p; hls.js target latency"
            f" {run.target_latency_s:.2f} s"
        )
        if run.hls_latency_s:
            print(
                f"  hls.js: latency (its estimate) {statistics.median(run.hls_latency_s):.2f} s,"
                f" buffered ahead {statistics.median(run.ahead_s):.2f} s (medians)"
            )
        if run.edge_ms:
            edge = run.edge_ms
            print(
                f"  a part is listed {_pct(edge, 50):.0f} ms (p50), {_pct(edge, 90):.0f} ms"
                " (p90) after its last frame was drawn on the publisher's canvas"
            )
        if run.errors:
            counts: dict[str, int] = {}
            for error in run.errors:
                counts[error] = counts.get(error, 0) + 1
            print(f"  hls.js errors: {json.dumps(counts)}")
    every = [lat for run in runs for lat in run.latency_ms]
    if every:
        p50s = [statistics.median(r.latency_ms) for r in runs if r.latency_ms]
        print(
            f"all runs: p50 {_pct(every, 50):.0f} ms (per run {min(p50s):.0f}-{max(p50s):.0f}),"
            f" p90 {_pct(every, 90):.0f} ms, stalls {sum(r.stalls for r in runs)}"
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} cores, load average {load} (publisher, viewer and server"
        " share it, with whatever else runs here: figures are noisy)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=6.0, help="seconds before the window")
    parser.add_argument("--runs", type=int, default=2, help="broadcasts, one after the other")
    parser.add_argument("--part-target", type=float, help="hls.part_target_s of the server")
    parser.add_argument("--segment-target", type=float, help="hls.segment_target_s")
    parser.add_argument("--hold-back-parts", type=float, help="hls.part_hold_back_parts")
    parser.add_argument("--renditions", help="hls.renditions of the server (default: livecore's)")
    parser.add_argument("--keep-log", type=Path, help="copy the server log here")
    args = parser.parse_args()
    args.seconds = max(1.0, min(args.seconds, MAX_SECONDS))
    args.warmup = max(0.0, min(args.warmup, 60.0))
    args.runs = max(1, min(args.runs, 10))
    try:
        from tests.web.browser import CHROMIUM
    except ModuleNotFoundError as exc:  # Playwright comes with the test extras
        raise SystemExit(f"bench_glass needs Playwright ({exc}): run bin/test once") from None
    if not CHROMIUM.exists():
        raise SystemExit(f"no Chromium at {CHROMIUM}: install the Debian package chromium")
    env = {"LIVECORE_LOG_LEVEL": "warning", "LIVECORE_SFU__ICE_HOST_ADDRESSES": "127.0.0.1"}
    if args.part_target:
        env["LIVECORE_HLS__PART_TARGET_S"] = str(args.part_target)
    if args.hold_back_parts:
        env["LIVECORE_HLS__PART_HOLD_BACK_PARTS"] = str(args.hold_back_parts)
    if args.segment_target:
        env["LIVECORE_HLS__SEGMENT_TARGET_S"] = str(args.segment_target)
    if args.renditions is not None:
        env["LIVECORE_HLS__RENDITIONS"] = args.renditions
    print(f"server settings: {env}")
    with tempfile.TemporaryDirectory(prefix="livecore-bench-glass-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        server = start_server(port, tmp / "var", tmp / "server.log", env=env)
        try:
            runs = asyncio.run(_bench(f"http://127.0.0.1:{port}", args))
        finally:
            stop_server(server)
            if args.keep_log:
                (tmp / "server.log").replace(args.keep_log)
    _report(runs)


if __name__ == "__main__":
    main()
