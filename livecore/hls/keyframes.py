"""When a packager asks its publisher for a keyframe.

Segments can only start at a keyframe, and a browser sends one only when asked, so a
packager asks once the segment in progress is long enough to be cut (the worker's rule), as
servers that ingest WebRTC do. A publisher seen to send keyframes of its own, due in time, is
asked only when one is late: asking earlier would add keyframes (bit rate) and cut its
segments shorter than its GOP for nothing. The hub merges these requests with its readers'
into at most one PLI per interval, so asking at every access unit until the keyframe comes
costs nothing more.

May import: hls/, sfu (MediaUnit only).
"""

from __future__ import annotations

from livecore.hls.playlist import segment_cut_s, segment_limit_s
from livecore.sfu.media import MediaUnit

# A publisher's own keyframe due at least this long before a segment's limit is waited for
# (and asked for once this late), leaving the rest for an asked-for one to arrive.
OWN_KEYFRAME_MARGIN_S = 0.4
OWN_KEYFRAME_LATE_S = 0.1


class KeyframeWatch:
    """Follows one broadcast's video keyframes (publisher's clock, seconds) and the segments
    its worker starts, and says when a keyframe is due. Runs on the loop."""

    def __init__(self, segment_target_s: float) -> None:
        self._target_s = segment_target_s
        # Where the segment in progress starts, None before the first video.
        self._segment_start_s: float | None = None
        self._segment_start_msn = -1  # the segment the worker last said starts there
        self._last_keyframe_s: float | None = None
        self._asked_since_keyframe = False
        # The interval of the publisher's own keyframes (ones that came unasked), if seen.
        self._own_gop_s: float | None = None

    def due(self, unit: MediaUnit) -> bool:
        """Whether to ask for a keyframe now, at this video unit (call `asked()` if so)."""
        now = unit.pts_s
        start = self._segment_start_s
        cut_s = segment_cut_s(self._target_s)
        if unit.keyframe:
            if self._asked_since_keyframe:
                self._own_gop_s = None  # its own came late, or it has none: ask in time
            elif self._last_keyframe_s is not None:
                self._own_gop_s = now - self._last_keyframe_s
            self._last_keyframe_s = now
            self._asked_since_keyframe = False
            if start is None or now - start >= cut_s:
                self._segment_start_s = now  # the worker cuts here, as it will say
            return False
        if start is None:
            return False
        ask_at = start + cut_s
        if self._own_gop_s is not None and self._last_keyframe_s is not None:
            due = self._last_keyframe_s + self._own_gop_s + OWN_KEYFRAME_LATE_S
            if due <= start + segment_limit_s(self._target_s) - OWN_KEYFRAME_MARGIN_S:
                ask_at = max(ask_at, due)
        return now >= ask_at

    def asked(self) -> None:
        self._asked_since_keyframe = True

    def segment_started(self, msn: int, start_s: float) -> None:
        """The worker reports segment `msn`; a new one, keyframe or not (a publisher that sent
        none in time gets its segment cut without one), is where the next request counts from."""
        if msn > self._segment_start_msn:
            self._segment_start_msn = msn
            self._segment_start_s = start_s
