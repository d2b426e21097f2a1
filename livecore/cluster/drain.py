"""Draining this node (`livecore serve` on SIGTERM): it takes no new publishes, shows itself
draining (the directory, /readyz), lets its live streams go on for `node.drain_grace_s` or
until their publishers have all left (to reconnect elsewhere), then lets the shutdown close
what is left. A second SIGTERM cuts the grace short. When another node takes publishes, the
broadcasts closed then are handed over (their publishers reconnect there and continue them;
the surviving nodes end the others after `node.handover_s`); else they end here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from livecore.cluster.directory import Directory
from livecore.nodestate import NodeState

logger = logging.getLogger(__name__)


class Holding:
    """How many live streams this node holds, and a wait for none."""

    def __init__(self) -> None:
        self.count = 0
        self._none = asyncio.Event()
        self._none.set()

    def add(self) -> None:
        self.count += 1
        self._none.clear()

    def remove(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._none.set()

    async def wait_none(self) -> None:
        await self._none.wait()


class Drainer:
    def __init__(
        self, state: NodeState, directory: Directory, holding: Holding, grace_s: float,
        on_leave: Callable[[], Awaitable[None]] | None = None,
    ) -> None:  # fmt: skip
        self._on_leave = on_leave  # notes the broadcasts left open for a handover
        self._state = state
        self._directory = directory
        self._holding = holding
        self._grace_s = grace_s

    async def run(self, hurry: asyncio.Event) -> None:
        """Drain; returns once the shutdown may end what is left (grace over, or `hurry`)."""
        self._state.phase = "draining"
        await self._directory.set_draining()
        logger.info(
            "draining: no new publishes; %d live streams go on for %.0f s at most",
            self._holding.count, self._grace_s,
        )  # fmt: skip
        waits = [asyncio.create_task(self._holding.wait_none()), asyncio.create_task(hurry.wait())]
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._grace_s):
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        left = self._holding.count
        elsewhere = await self._state.elsewhere() if left else None
        self._state.hand_over_at_exit = elsewhere is not None
        self._state.phase = "ending"
        logger.info(
            "drained: %d live streams left, %s", left,
            f"handed over (publishers may continue on {elsewhere})" if elsewhere else "ended",
        )  # fmt: skip
        if self._on_leave is not None:
            try:
                await self._on_leave()
            except Exception:  # started again within the wait, this node ends them at once
                logger.exception("could not note the broadcasts left for a handover")
