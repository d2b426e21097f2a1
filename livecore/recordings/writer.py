"""Writing one rendition of a recording as its broadcast goes on: init segments, parts,
segments and the VOD playlist, through a `RecordingSink`.

Blocking: the packaging worker calls it from its own thread or process. Parts are for
players at the live edge; once their segment is written they are pruned, keeping those of
the last few segments the live playlist still lists. A recording whose packaging process died
is `resume`d by the worker that takes its broadcast over.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable

from livecore.recordings.layout import VOD_PLAYLIST, init_name, part_name
from livecore.recordings.playlist import RecordedSegment, RecordingPlaylist
from livecore.recordings.sink import RecordingSink

logger = logging.getLogger(__name__)


class WriteFailed(Exception):
    """A file of the recording could not be written; the message names it."""


class RecordingWriter:
    def __init__(
        self, sink: RecordingSink, *, segment_target_s: float, parts_kept: int, label: str
    ) -> None:
        self._sink = sink
        self._parts_kept = parts_kept  # segments whose parts stay while the broadcast goes on
        self._label = label  # for logs: the stream's slug (and rendition)
        self._segment_target_s = segment_target_s
        self._playlist = RecordingPlaylist(segment_target_s)
        # (msn, parts) of the recent complete segments whose part files are still stored.
        self._parts_stored: deque[tuple[int, int]] = deque()

    @property
    def empty(self) -> bool:
        """No segment is complete yet."""
        return self._playlist.empty

    def open(self) -> None:
        self._sink.open()

    def resume(self, stored_parts: Iterable[tuple[int, int]], last: RecordedSegment | None) -> None:
        """Go on with a recording another writer left when its process died: its VOD playlist
        as written, then `last` (the last complete segment its broadcast reported, whose
        listing the death may have cut short) unless listed. `stored_parts`: (msn, parts) of
        the recent complete segments, whose parts are pruned as if written here."""
        written = self._sink.get(VOD_PLAYLIST)
        if written is not None:
            self._playlist = RecordingPlaylist.resumed(written.decode(), self._segment_target_s)
        if last is not None and not self._playlist.has(last.msn):
            self._list(last)
        self._parts_stored.extend(stored_parts)

    def read_part(self, msn: int, index: int) -> bytes:
        """A part written before (a resumed recording completes the segment it was in)."""
        name = part_name(msn, index)
        data = self._sink.get(name)
        if data is None:
            raise WriteFailed(f"{name}: missing, its segment cannot be completed")
        return data

    def discard_part(self, msn: int, index: int) -> None:
        """Remove a part written but never reported (its writer died): no segment has it."""
        self._sink.discard(part_name(msn, index))

    def write_init(self, n: int, data: bytes) -> None:
        self._put(init_name(n), data)

    def write_part(self, msn: int, index: int, data: bytes) -> None:
        self._put(part_name(msn, index), data)

    def write_segment(self, seg: RecordedSegment, data: bytes) -> None:
        """A complete segment's file (`data`: its parts' bytes); `record` it next."""
        self._put(seg.uri, data)

    def record(self, seg: RecordedSegment, parts: int) -> None:
        """Add a written segment of `parts` parts to the recording: the whole broadcast so
        far as a finished VOD playlist, rewritten per segment so a crash mid-stream still
        leaves a playable recording up to the last complete segment; then prune parts."""
        self._list(seg)
        self._parts_stored.append((seg.msn, parts))
        self._prune_parts(self._parts_kept)

    def _list(self, seg: RecordedSegment) -> None:
        self._playlist.add(seg)
        self._put(VOD_PLAYLIST, self._playlist.render().encode())

    def finish(self, parts_kept: int) -> None:
        """The broadcast has ended: keep the parts of the last `parts_kept` segments only
        (those its ended live playlist still lists)."""
        self._prune_parts(parts_kept)

    def _prune_parts(self, segments: int) -> None:
        """Delete the parts of all but the last `segments` complete segments. The segment
        holds the same bytes: kept, parts doubled a recording's size on disk (and retention,
        which counts media bytes, let the disk fill to twice its limit)."""
        while len(self._parts_stored) > segments:
            msn, parts = self._parts_stored.popleft()
            for index in range(parts):
                name = part_name(msn, index)
                try:
                    self._sink.discard(name)
                except OSError:  # the recording is whole without it; the file is left over
                    logger.warning("hls %s: could not delete %s", self._label, name)

    def _put(self, name: str, data: bytes) -> None:
        try:
            self._sink.put(name, data)
        except OSError as exc:
            raise WriteFailed(f"{name}: {exc}") from exc
