"""hls.js in headless Chromium as a benchmark player: glass to glass as viewers see it.

A page of our own (answered by Playwright itself at `{base}/__bench/player`, so it never
reaches livecore) loads livecore's hls.js and plays one stream in low-latency mode, like
/watch does. Every 100 ms while the video plays it takes `Date.now() - hls.playingDate`:
the wall clock minus the EXT-X-PROGRAM-DATE-TIME of the frame on screen, which livecore
stamps when the frame arrives from the publisher (on loopback: when it was sent). Chromium
is Debian's, driven by Playwright as in the browser tests, with their launch arguments.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

_PAGE = """<!doctype html>
<meta charset="utf-8"><title>bench player</title>
<video id="v" muted autoplay playsinline></video>
<script src="/static/vendor/hls.min.js"></script>
<script type="module">
import { keepLive, liveOptions } from "/static/player.js";  // as /watch plays live streams
const v = document.getElementById("v");
const samples = [], stalls = [];
const hls = new Hls(liveOptions);
hls.loadSource(SOURCE);
hls.attachMedia(v);
keepLive(hls, v);
v.play().catch(() => {});
v.addEventListener("waiting", () => stalls.push(Date.now()));
setInterval(() => {
  const at = hls.playingDate;
  if (at && !v.paused && v.readyState >= 3) samples.push(Date.now() - at.getTime());
}, 100);
window.bench = () => ({ samples: samples.splice(0), stalls: stalls.splice(0),
                        time: v.currentTime, target: hls.targetLatency || 0 });
</script>
"""


@dataclass
class PlayerResult:
    latency_ms: list[float] = field(default_factory=list)
    stalls: int = 0
    played_s: float = 0.0
    target_latency_s: float = 0.0
    error: str = ""


async def play(base: str, slug: str, window: tuple[float, float]) -> PlayerResult:
    """Play /hls/{slug}/master.m3u8 until window[1] (time.time()); keep what was measured
    inside the window."""
    # Imported here, not at the top: only --hlsjs needs Playwright (tests.web.browser
    # imports it too), and every other benchmark must start without it installed.
    from playwright.async_api import async_playwright

    from tests.web.browser import CHROMIUM, LAUNCH_ARGS

    result = PlayerResult()
    page_url = f"{base}/__bench/player"
    html = _PAGE.replace("SOURCE", json.dumps(f"/hls/{slug}/master.m3u8"))
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=list(LAUNCH_ARGS), headless=True
            )
            try:
                page = await browser.new_page()
                await page.route(page_url, lambda route: route.fulfill(
                    status=200, content_type="text/html", body=html))  # fmt: skip
                await page.goto(page_url)
                played0: float | None = None
                while (now := time.time()) < window[1]:
                    await asyncio.sleep(min(1.0, window[1] - now))
                    got = await page.evaluate("window.bench()")
                    if time.time() < window[0]:
                        continue  # still warming up: hls.js finds the live edge
                    played0 = got["time"] if played0 is None else played0
                    result.latency_ms += got["samples"]
                    result.stalls += len(got["stalls"])
                    result.played_s = got["time"] - played0
                    result.target_latency_s = got["target"]
            finally:
                await browser.close()
    except Exception as exc:  # the figure is left out, the rest of the run still counts
        result.error = repr(exc)
    return result
