"""A recording in legs (one per node that carried the broadcast): its stored playlists, and
its VOD played end to end across the legs' discontinuity."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import av

from livecore.recordings.bucket import Bucket
from livecore.store import Database

Read = Callable[[str], Awaitable[str]]  # a leg's stored playlist, by its recording path


def in_bucket(bucket: Bucket) -> Read:
    async def read(path: str) -> str:
        try:
            return (await bucket.read(bucket.key(path, "vod.m3u8"))).decode()
        except FileNotFoundError:
            return ""

    return read


def on_disk(data_dir: Path) -> Read:
    async def read(path: str) -> str:
        try:
            return await asyncio.to_thread((data_dir / path / "vod.m3u8").read_text)
        except FileNotFoundError:
            return ""

    return read


async def recording_path(db: Database, broadcast_id: int) -> str:
    path: str = await db.pool.fetchval(
        "SELECT recording_path FROM broadcasts WHERE id = $1", broadcast_id
    )
    return path


async def segments_stored(read: Read, path: str, count: int) -> None:
    """Wait (60 s at most) until the recording's playlist at `path` lists `count` segments
    (storage tells nothing when an object arrives: it is read again and again)."""
    async with asyncio.timeout(60):
        while True:
            if (await read(path)).count("#EXTINF") >= count:
                return
            await asyncio.sleep(0.2)


def packets(url: str, options: dict[str, str] | None = None) -> list[tuple[int, bool]]:
    """(pts, keyframe) of each video packet FFmpeg demuxes from a VOD playlist, end to end.
    Blocks: run it in a thread."""
    opts = {"http_persistent": "0", **(options or {})}
    with av.open(url, "r", options=opts, timeout=10) as container:
        video = container.streams.video[0]
        return [(p.pts, p.is_keyframe) for p in container.demux(video) if p.pts is not None]


def frames(url: str) -> int:
    """Video frames FFmpeg decodes from a VOD playlist. Blocks: run it in a thread."""
    with av.open(url, "r", options={"http_persistent": "0"}, timeout=10) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def split_at_leg_one(text: str, base: str, tmp: Path) -> list[Path]:
    """The joined playlist's two legs as playlists of their own (split where leg 1 starts,
    the EXT-X-DISCONTINUITY there dropped), URIs absolute under `base`."""
    head, body = [], []
    for line in text.splitlines():
        if line.startswith(("#EXTM3U", "#EXT-X-VERSION", "#EXT-X-TARGETDURATION",
                            "#EXT-X-PLAYLIST-TYPE", "#EXT-X-MEDIA-SEQUENCE",
                            "#EXT-X-INDEPENDENT")):  # fmt: skip
            head.append(line)
        elif line != "#EXT-X-ENDLIST":
            body.append(line)
    boundary = leg_boundary(body)
    rest = body[boundary:]
    legs = [body[:boundary], rest[1:] if rest[0] == "#EXT-X-DISCONTINUITY" else rest]
    paths = []
    for i, lines in enumerate(legs):
        absolute = [
            line.replace('URI="', f'URI="{base}', 1) if line.startswith("#EXT-X-MAP:")
            else line if line.startswith("#") else base + line
            for line in lines
        ]  # fmt: skip
        path = tmp / f"leg{i}.m3u8"
        path.write_text("\n".join([*head, *absolute, "#EXT-X-ENDLIST"]) + "\n")
        paths.append(path)
    return paths


def leg_boundary(lines: list[str]) -> int:
    """Where leg 1 starts: the line after the last segment of leg 0."""
    uris = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    first_b = next(i for i in uris if line_leg(lines[i]) == 1)
    return max(i for i in uris if i < first_b) + 1


def line_leg(uri: str) -> int:
    return 1 if uri.startswith("leg-1/") else 0


async def plays_both_legs(http: aiohttp.ClientSession, url: str, tmp: Path) -> dict[str, Any]:
    """The recording's VOD at `url` (…/vod.m3u8): A's segments, then an EXT-X-DISCONTINUITY,
    then B's (under leg-1/, with its own init segment), and FFmpeg demuxes all of it: every
    packet of A's leg and of B's leg demuxed apart, in order, each of them some."""
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    lines = text.splitlines()
    uris = [line for line in lines if line and not line.startswith("#")]
    legs = [line_leg(uri) for uri in uris]
    assert legs == sorted(legs) and legs.count(0) >= 2 and legs.count(1) >= 2, text
    boundary = leg_boundary(lines)
    switch = lines[boundary : lines.index(uris[legs.index(1)])]
    assert "#EXT-X-DISCONTINUITY" in switch and any('URI="leg-1/init-' in t for t in switch), text
    whole = await asyncio.to_thread(packets, url)
    parts = await asyncio.to_thread(split_at_leg_one, text, url.removesuffix("vod.m3u8"), tmp)
    local = {"protocol_whitelist": "file,http,tcp"}
    apart = [await asyncio.to_thread(packets, str(p), local) for p in parts]
    # The whole is A's leg, then B's: every packet of each, in order, each leg starting at a
    # keyframe and B's timeline starting again (the discontinuity).
    assert len(apart) == 2 and all(leg and leg[0][1] for leg in apart), apart
    assert whole == apart[0] + apart[1]
    assert apart[1][0][0] < apart[0][-1][0]
    # And it decodes on past the switch into B's media.
    decoded = await asyncio.to_thread(frames, url)
    assert decoded > len(apart[0]), (decoded, len(apart[0]), len(apart[1]))
    return {"packets": [len(leg) for leg in apart], "decoded": decoded}
