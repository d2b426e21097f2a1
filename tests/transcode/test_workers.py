"""The media worker pool's processes do not outlive the node that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

# A node in miniature: it starts the pool, prints its workers' PIDs and waits to be killed.
_NODE = """
import asyncio, psutil
from livecore.transcode.workers import WorkerPool

async def main() -> None:
    await WorkerPool(2).get()
    print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


def _gone(pids: list[int], within_s: float) -> list[int]:
    """The PIDs still running (not zombies) after waiting up to `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def test_workers_of_a_node_killed_with_sigkill_exit_by_themselves() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _NODE], stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as node:
        try:
            assert node.stdout is not None
            children = [int(pid) for pid in node.stdout.readline().split()]
            assert len(children) >= 2, children  # the two workers (and the resource tracker)
            os.kill(node.pid, signal.SIGKILL)
            node.wait(10)
            left = _gone(children, 30)
            for pid in left:  # ours: not left running even when the test fails
                os.kill(pid, signal.SIGKILL)
            assert left == [], f"still running after their node was killed: {left}"
        finally:
            if node.poll() is None:
                node.kill()
