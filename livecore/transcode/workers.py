"""The process pool for CPU-heavy media work (thumbnails; later renditions).

Creating the pool and spawning its processes are blocking calls, so both happen in a thread,
and every worker is started up front: a submit from the event loop then never has to spawn.
Processes are spawned, not forked: a fork would copy the loop, sockets and threads.
A worker exits by itself once the process that started it is gone: a pool's idle worker
waits on its queue forever, so a node killed with SIGKILL would leave its workers (and
multiprocessing's resource tracker) running until the host restarts.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, wait

_PARENT_CHECK_S = 1.0


def _exit_with_parent(parent: int) -> None:
    """In each worker as it starts: a daemon thread ends the process once its parent is
    gone (it is reparented, so getppid() changes)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _ready() -> bool:
    import av  # noqa: F401  # the import the media jobs need, paid once per worker

    return True


def _start_sync(workers: int) -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent, initargs=(os.getpid(),),
    )  # fmt: skip
    # A job per worker while the others are still busy makes the pool start all of them.
    wait([pool.submit(_ready) for _ in range(workers)])
    return pool


class WorkerPool:
    """Starts its processes when first needed (a node with no live stream spawns none)."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._starting: asyncio.Task[ProcessPoolExecutor] | None = None

    async def get(self) -> ProcessPoolExecutor:
        if self._starting is None:
            self._starting = asyncio.create_task(asyncio.to_thread(_start_sync, self._workers))
        return await asyncio.shield(self._starting)

    async def close(self) -> None:
        if self._starting is None:
            return
        pool = await self._starting
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
