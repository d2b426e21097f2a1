"""Gather concurrent calls into batches: while one batch runs, the calls that arrive wait
and then go together as the next one.

Under a burst of payment webhooks every settlement meets on the same few ledger accounts;
one statement for many settlements takes those rows' locks once per batch instead of once
per payment. At low load a batch is a single call and nothing waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    def __init__(
        self,
        run: Callable[[Sequence[In]], Awaitable[Sequence[Out | Exception]]],
        max_batch: int = 100,
    ) -> None:
        # `run` answers each item in order: its result, or the exception its caller gets.
        self._run = run
        self._max = max_batch
        self._waiting: list[tuple[In, asyncio.Future[Out]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain(), name="batcher")
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max]
                del self._waiting[: self._max]
                try:
                    results = await self._run([item for item, _ in batch])
                except Exception as exc:  # every caller of the batch gets the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue  # its caller went away; the work is done regardless
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._worker = None


class Backlog(Generic[In]):
    """Work done after its caller has moved on: items wait (at most `limit`; beyond that
    `add` waits for room) and one background task runs all that are waiting at once.

    A payment's room announcement goes this way: the webhook is answered once the money
    is recorded, and announcements made together share their look-ups (see Batcher).
    """

    def __init__(self, run: Callable[[In], Awaitable[None]], limit: int = 10_000) -> None:
        self._run = run
        self._queue: asyncio.Queue[In] = asyncio.Queue(maxsize=limit)
        self._worker: asyncio.Task[None] | None = None

    async def add(self, item: In) -> None:
        await self._queue.put(item)
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain(), name="backlog")

    async def join(self) -> None:
        """Return once every item added so far has run."""
        await self._queue.join()

    async def _drain(self) -> None:
        try:
            while not self._queue.empty():
                items = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
                results = await asyncio.gather(
                    *(self._run(item) for item in items), return_exceptions=True
                )
                for result in results:
                    if isinstance(result, Exception):
                        logger.error("background work failed", exc_info=result)
                for _ in items:
                    self._queue.task_done()
        finally:
            self._worker = None
