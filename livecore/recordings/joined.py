"""One VOD playlist for a recording in legs (recordings.layout): each leg's playlist in
order, an EXT-X-DISCONTINUITY where the node changed, URIs under the leg's directory.

Each leg has its own init segments, timestamps and media sequence: the discontinuity tells
players to take the next leg's init segment and timeline (RFC 8216 4.3.2.3). A recording is
immutable once listed (every leg finished), so its joined playlist is made once per node and
kept (`JoinedPlaylists`), not once per viewer. Imports nothing from livecore outside
recordings/; no I/O.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

from livecore.recordings.layout import leg_name

_DROPPED = ("#EXTM3U", "#EXT-X-VERSION:", "#EXT-X-PLAYLIST-TYPE:", "#EXT-X-ENDLIST")
# Joined playlists kept per node, in characters: a broadcast of four hours in 2 s segments
# joins to about 230 kB (made in about 20 ms on a 2-core machine).
KEPT_CHARS = 32 * 1024 * 1024


def join(playlists: list[tuple[int, str]]) -> str:
    """The VOD playlist of legs (leg, its playlist's text) in order. A leg that lists no
    segment is left out (its node recorded nothing complete)."""
    target, first, independent = 1, None, True
    body: list[str] = []
    for leg, text in playlists:
        prefix = f"{leg_name(leg)}/" if leg else ""
        lines, sequence, leg_independent = [], 0, False
        for line in text.splitlines():
            if not line or line.startswith(_DROPPED):
                continue
            if line.startswith("#EXT-X-TARGETDURATION:"):
                target = max(target, int(line.partition(":")[2]))
            elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                sequence = int(line.partition(":")[2])
            elif line == "#EXT-X-INDEPENDENT-SEGMENTS":
                leg_independent = True
            elif line.startswith("#EXT-X-MAP:"):
                lines.append(line.replace('URI="', f'URI="{prefix}', 1))
            elif line.startswith("#"):
                lines.append(line)
            else:
                lines.append(prefix + line)
        if not any(line.startswith("#EXTINF:") for line in lines):
            continue
        if body:
            body.append("#EXT-X-DISCONTINUITY")
        first = sequence if first is None else first
        independent = independent and leg_independent
        body.extend(lines)
    head = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}",
            "#EXT-X-PLAYLIST-TYPE:VOD", f"#EXT-X-MEDIA-SEQUENCE:{first or 0}"]  # fmt: skip
    if independent and body:
        head.append("#EXT-X-INDEPENDENT-SEGMENTS")
    return "\n".join([*head, *body, "#EXT-X-ENDLIST"]) + "\n"


class JoinedPlaylists:
    """The joined playlists of the recordings served lately, by (broadcast, legs)."""

    def __init__(self, kept_chars: int = KEPT_CHARS) -> None:
        self._kept_chars = kept_chars
        self._chars = 0
        self._texts: OrderedDict[tuple[int, tuple[int, ...]], str] = OrderedDict()
        self._making: dict[tuple[int, tuple[int, ...]], asyncio.Task[str]] = {}

    async def get_or_make(
        self, broadcast_id: int, legs: list[int], make: Callable[[], Coroutine[Any, Any, str]]
    ) -> str:
        """The kept playlist, else the one `make()` gives, kept: made once however many ask
        at the same time (the first viewers of a recording just listed). A failure is not
        kept; everyone waiting gets it."""
        text = self.get(broadcast_id, legs)
        if text is not None:
            return text
        key = (broadcast_id, tuple(legs))
        making = self._making.get(key)
        if making is None:
            making = self._making[key] = asyncio.create_task(make())
            making.add_done_callback(lambda task: self._made(key, task))
        # Shielded: a viewer that goes away does not cancel it for the others.
        return await asyncio.shield(making)

    def _made(self, key: tuple[int, tuple[int, ...]], task: asyncio.Task[str]) -> None:
        del self._making[key]
        if not task.cancelled() and task.exception() is None:
            self.put(key[0], list(key[1]), task.result())

    def get(self, broadcast_id: int, legs: list[int]) -> str | None:
        key = (broadcast_id, tuple(legs))
        text = self._texts.get(key)
        if text is not None:
            self._texts.move_to_end(key)
        return text

    def put(self, broadcast_id: int, legs: list[int], text: str) -> None:
        key = (broadcast_id, tuple(legs))
        self._chars += len(text) - len(self._texts.get(key, ""))
        self._texts[key] = text
        while self._chars > self._kept_chars and len(self._texts) > 1:
            _, dropped = self._texts.popitem(last=False)
            self._chars -= len(dropped)
