"""The layout of a recording: where each broadcast's files go and what they are called.

A broadcast is recorded under `recordings/<stream id>/<UTC start stamp>/` of the data
directory: init segments, segments, the live edge's parts and `vod.m3u8` for the source,
and one subdirectory per lower rendition ("360p/") laid out the same way. A broadcast that
moved to another node (drain, failover) goes on recording there as the next leg of the same
recording, `leg-<k>/` under it, laid out the same way again (its own init segments, segments,
renditions and playlist, its media sequence its own); the recording as it is at its path is
leg 0. Imports nothing from livecore; no I/O.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

ROOT = "recordings"
VOD_PLAYLIST = "vod.m3u8"
SEGMENT_GLOB = "seg-*.m4s"  # every segment of every rendition: a recording's media bytes

# File names are matched whole; anything else (.., %2f, absolute paths) is a 404.
# ASCII digits only: `\d` would take other scripts' digits, which int() then refuses.
# Groups: init number, segment msn, part msn, part index (vod.m3u8 matches none).
LIVE_FILE = re.compile(
    r"(?:init-([0-9]{1,18})\.mp4|seg-([0-9]{1,18})\.m4s"
    r"|part-([0-9]{1,18})-([0-9]{1,4})\.m4s|vod\.m3u8)"
)
# What a finished recording serves: its parts are gone (or going) once it has ended.
VOD_FILE = re.compile(r"(?:init-[0-9]{1,18}\.mp4|seg-[0-9]{1,18}\.m4s|vod\.m3u8)")
# A leg's directory (leg 1 on): "leg-" and its number, no leading zero.
LEG_DIR = re.compile(r"leg-([1-9][0-9]{0,8})")


def init_name(n: int) -> str:
    return f"init-{n}.mp4"


def segment_name(msn: int) -> str:
    return f"seg-{msn}.m4s"


def part_name(msn: int, index: int) -> str:
    return f"part-{msn}-{index}.m4s"


def broadcast_dir(root: Path, stream_id: int, started: datetime) -> Path:
    """Where a broadcast that started at `started` (UTC) is recorded, under the recordings
    root (`<data directory>/recordings`)."""
    return root / str(stream_id) / started.strftime("%Y%m%dT%H%M%S%fZ")


def rendition_dir(broadcast: Path, rendition: str) -> Path:
    """Where a lower rendition ("360p") of a broadcast is recorded; the source is recorded
    in the broadcast's directory itself."""
    return broadcast / rendition


def leg_name(leg: int) -> str:
    """The directory of leg `leg` (1 on) under its recording."""
    return f"leg-{leg}"


def leg_path(recording: str, leg: int) -> str:
    """Where leg `leg` of the recording at `recording` is stored (leg 0: the path itself)."""
    return recording if leg == 0 else f"{recording}/{leg_name(leg)}"


def leg_of(name: str) -> int:
    """The leg an object of a recording belongs to, by its name ("leg-2/seg-5.m4s": 2;
    "seg-5.m4s", "360p/seg-5.m4s": 0)."""
    match = LEG_DIR.fullmatch(name.partition("/")[0]) if "/" in name else None
    return int(match.group(1)) if match is not None else 0
