"""Reading a live LL-HLS stream over HTTP: its playlist once it has a segment, and its video
packets as FFmpeg demuxes them."""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
import av

PLAYLIST = "/hls/cooking/source/index.m3u8"


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as resp:
        return resp.status, await resp.text()


async def playlist_with_segment(http: aiohttp.ClientSession, url: str) -> str:
    """The live playlist at `url` once it lists a complete segment (60 s at most)."""
    async with asyncio.timeout(60):
        while True:
            status, text = await get(http, url)
            if status == 200 and "#EXTINF" in text:
                return text
            await asyncio.sleep(0.2)


def read_video(
    url: str, seen: list[tuple[float, float, bool]], stop: threading.Event,
    data: dict[float, bytes] | None = None,
) -> None:  # fmt: skip
    """Append (arrival, pts, keyframe) of each video packet FFmpeg demuxes from live HLS `url`
    to `seen` (and its bytes to `data` by pts, when given) until `stop` is set (checked at
    each packet). Blocks: run it in a thread."""
    with av.open(url, "r", options={"http_persistent": "0"}, timeout=10) as container:
        video = container.streams.video[0]
        for packet in container.demux(video):
            if packet.pts is not None and video.time_base:
                pts = float(packet.pts * video.time_base)
                if data is not None:
                    data[pts] = bytes(packet)
                seen.append((time.monotonic(), pts, packet.is_keyframe))
            if stop.is_set():
                return


def keyframes_after_restart(seen: list[tuple[float, float, bool]]) -> int:
    """Keyframes read after the timestamps went back by more than a second (a new timeline)."""
    restart = next((i for i in range(1, len(seen)) if seen[i][1] < seen[i - 1][1] - 1.0), len(seen))
    return sum(1 for _, _, key in seen[restart:] if key)
