"""A broadcast's packaging outlives its packaging process (`ResumingLink`).

A packaging process hosts several broadcasts, and can die with all of them: the OOM killer,
a crash in a codec, a kill -9. The publisher is still connected and sending, so each of its
broadcasts goes on in another process: the new worker completes the segment that was in
progress with the parts players were shown, the recording and both playlists go on after an
EXT-X-DISCONTINUITY with the next keyframe (the packager asks the publisher for one), and
media sequence numbers keep increasing. What happened is known from the worker's own events,
so nothing is asked of the dead process.

A broadcast whose packaging keeps dying (`RestartBudget`: more than `restarts` deaths within
`window_s`) ends as failed, as it did before resuming existed: a stream that crashes every
process it is given must not crash-loop the node. Runs on the event loop; never waits (a new
process is spawned in a thread, and the recording is read back by the new worker).

May import: hls/ (the worker's events and spec), config, sfu (MediaUnit only).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from livecore.hls.metrics import HlsMetrics
from livecore.hls.state import Segment
from livecore.hls.worker import (
    Finished,
    InitReady,
    Resume,
    Resumed,
    SegmentUpdate,
    WorkerEvent,
    WorkerSpec,
)
from livecore.sfu.media import MediaUnit

if TYPE_CHECKING:
    from livecore.hls.packaging import EventHandler, WorkerLink

logger = logging.getLogger(__name__)


class RestartBudget:
    """At most `restarts` restarts within any `window_s` seconds (0: never restart)."""

    def __init__(self, restarts: int, window_s: float) -> None:
        self.restarts = restarts
        self.window_s = window_s
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        """Whether one more restart at `now` (time.monotonic) is allowed; counts it if so."""
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) >= self.restarts:
            return False
        self._times.append(now)
        return True


class ResumingLink:
    """One broadcast's worker (a `WorkerLink`) in whichever packaging process is alive.

    `new_link` gives a link in a packaging process (None once they are closing). The events
    of the worker pass through to the packager, except a crash within the budget: the
    broadcast then goes on in a new link, and the packager is told `Resumed`."""

    def __init__(
        self,
        new_link: Callable[[], WorkerLink | None],
        budget: RestartBudget,
        metrics: HlsMetrics | None = None,
    ) -> None:
        self._new_link = new_link
        self._budget = budget
        self._metrics = metrics
        self._link = new_link()
        self._spec: WorkerSpec | None = None
        self._on_event: EventHandler | None = None
        self._ended = False
        self.restarts = 0
        # What a new worker needs to go on, from the events so far.
        self._last: Segment | None = None
        self._stored: deque[tuple[int, int]] = deque()  # (msn, parts) of complete segments
        self._next_init: int | None = None
        self._video = False  # its last init segment has a video track

    def start(self, spec: WorkerSpec, on_event: EventHandler) -> None:
        self._spec, self._on_event = spec, on_event
        # The writer keeps the parts of this many complete segments (segmenting.py).
        self._stored = deque(maxlen=spec.config.live_window_segments)
        if self._link is None:  # closing: no process to package in
            asyncio.get_running_loop().call_soon(self._event, Finished(failed=True))
        else:
            self._link.start(spec, self._event)

    def send(self, unit: MediaUnit, queued_at: float) -> None:
        if self._link is not None:
            self._link.send(unit, queued_at)

    @property
    def backlog(self) -> int:
        return self._link.backlog if self._link is not None else 0

    def end(self) -> None:
        # A death after this is not resumed: the broadcast is over, its recording is whole
        # up to the last complete segment.
        self._ended = True
        if self._link is not None:
            self._link.end()

    def _event(self, event: WorkerEvent) -> None:
        assert self._on_event is not None
        if isinstance(event, InitReady):
            self._next_init = event.init.n + 1
            self._video = event.init.video_codec is not None
        elif isinstance(event, SegmentUpdate):
            self._last = event.segment
            if event.segment.complete:
                self._stored.append((event.segment.msn, len(event.segment.parts)))
        elif isinstance(event, Finished) and event.crashed and not self._ended and self._restart():
            return  # the broadcast goes on
        self._on_event(event)

    def _restart(self) -> bool:
        """Go on in a new link; False when the budget is spent or no process is left."""
        spec = self._spec
        assert spec is not None and self._on_event is not None
        budget = self._budget
        if not budget.allow(time.monotonic()):
            logger.error("hls %s: its packaging process died once more than the %d restarts"
                         " allowed within %g s: packaging ends", spec.slug, budget.restarts,
                         budget.window_s)  # fmt: skip
            if self._metrics is not None:
                self._metrics.packaging_restarts_exhausted.inc()
            return False
        link = self._new_link()
        if link is None:
            return False
        self.restarts += 1
        if self._metrics is not None:
            self._metrics.packaging_restarts.inc()
        logger.warning("hls %s: its packaging process died; packaging goes on in another from"
                       " the next keyframe (restart %d)", spec.slug, self.restarts)  # fmt: skip
        last = self._last
        resume = Resume(
            last=last,
            stored_parts=tuple(self._stored),
            next_init=self._next_init if self._next_init is not None else spec.sequence_base,
            # Segmenter: program_date_time = wall base + start_s (the publisher's clock).
            wall_base=last.program_date_time - last.start_s if last is not None else None,
            video=self._video,
        )
        self._link = link
        link.start(replace(spec, resume=resume), self._event)
        self._on_event(Resumed(self.restarts))
        return True
