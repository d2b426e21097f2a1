"""This node's phase (serving, draining after SIGTERM, ending) and the broadcasts it is about
to continue: what ops (/readyz), signaling (WHIP), streams (broadcast states) and hls (the
playlist's discontinuity) read, and livecore.cluster sets. A leaf: imports nothing of
livecore, so packages that may not import cluster can read it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

Phase = Literal["serving", "draining", "ending"]


@dataclass(frozen=True, slots=True)
class Continuation:
    """A broadcast that a publisher, reconnecting here, continues: its node drained or died."""

    broadcast_id: int
    # The live playlist here starts at this discontinuity sequence, one past the last node's,
    # so players treat the switch as an EXT-X-DISCONTINUITY (new timestamps, new init). It is
    # also the leg of the broadcast's recording recorded here (recordings.layout).
    discontinuity: int
    recording_path: str = ""  # the broadcast's recording ('': none, nothing to go on with)


async def _nowhere() -> str | None:
    return None


async def _nothing(stream_id: int) -> None:
    return None


class NodeState:
    """Read anywhere, written only by livecore.cluster (and `continuing` consumed once by the
    broadcast's start)."""

    def __init__(self, node_id: str = "") -> None:
        self.node_id = node_id
        # serving -> draining (SIGTERM: no new publishes; a publisher that leaves may come
        # back on another node) -> ending (the grace is over: what is left ends here).
        self.phase: Phase = "serving"
        # Ending: whether the broadcasts left are handed over too (another node takes
        # publishes: their publishers reconnect there) or ended for good (none does).
        self.hand_over_at_exit = False
        # stream id -> the broadcast a publish being started here continues.
        self.continuing: dict[int, Continuation] = {}
        # Set by cluster: the URL of another node taking publishes (None: none known)...
        self.elsewhere: Callable[[], Awaitable[str | None]] = _nowhere
        # ...and the look-up that fills `continuing` before a publish starts.
        self.before_publish: Callable[[int], Awaitable[None]] = _nothing

    @property
    def draining(self) -> bool:
        return self.phase != "serving"

    @property
    def hands_over(self) -> bool:
        """Whether a broadcast that ends here now stays open for another node."""
        return self.phase == "draining" or (self.phase == "ending" and self.hand_over_at_exit)
