"""A node as its own `livecore serve` process (signals need one): loopback port, the test
PostgreSQL and Redis, ICE on 127.0.0.1 only, its output kept for the failure message; or
several such nodes started at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from livecore.config import StorageConfig
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Services:
    """What the nodes share: the test PostgreSQL and Redis, and the secret key."""

    dsn: str
    redis_url: str
    secret_key: str


def bucket_env(storage: StorageConfig) -> dict[str, str]:
    """The LIVECORE_* variables that point a served node at the bucket of `storage`."""
    return {
        "LIVECORE_STORAGE__KIND": storage.kind, "LIVECORE_STORAGE__BUCKET": storage.bucket,
        "LIVECORE_STORAGE__ENDPOINT_URL": storage.endpoint_url,
        "LIVECORE_STORAGE__KEY_PREFIX": storage.key_prefix,
        "LIVECORE_STORAGE__RETRY_BASE_S": str(storage.retry_base_s),
        "LIVECORE_STORAGE__RETRY_MAX_S": str(storage.retry_max_s),
        "LIVECORE_STORAGE__REQUEST_TIMEOUT_S": str(storage.request_timeout_s),
    }  # fmt: skip


class ServedNode:
    def __init__(self, name: str, proc: asyncio.subprocess.Process, port: int) -> None:
        self.name = name
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        # For the API helpers of tests/conftest.py: paths are relative to the node.
        self.api = aiohttp.ClientSession(base_url=self.url)
        self.output: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.output.append(line.decode(errors="replace").rstrip())

    def log(self) -> str:
        return "\n".join(self.output[-80:])

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    async def exited(self, timeout_s: float = 60) -> int:
        try:
            async with asyncio.timeout(timeout_s):
                code = await self.proc.wait()
                await self._reader
        except TimeoutError:
            raise AssertionError(f"{self.name} still runs:\n{self.log()}") from None
        return code

    async def kill_hard(self) -> None:
        """kill -9 the node and the worker processes it started (they would outlive it)."""
        children = await asyncio.to_thread(_children, self.proc.pid)
        for pid in [self.proc.pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await self.exited()


def _children(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@contextlib.asynccontextmanager
async def served_node(
    name: str, tmp: Path, services: Services, *, node: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[ServedNode]:  # fmt: skip
    """Start `livecore serve` as node `name` (`node`: more [node] settings, `env`: more
    LIVECORE_* variables) and wait until it answers (60 s at most); at the end, stop it if it
    still runs."""
    port = free_port()
    given = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECORE_")}
    env.update(
        LIVECORE_HOST="127.0.0.1", LIVECORE_PORT=str(port), LIVECORE_DATA_DIR=str(tmp / name),
        LIVECORE_DATABASE_URL=services.dsn, LIVECORE_REDIS_URL=services.redis_url,
        LIVECORE_SECRET_KEY=services.secret_key,
        LIVECORE_NODE__ID=name, LIVECORE_NODE__INTERNAL_URL=f"http://127.0.0.1:{port}",
        LIVECORE_SFU__ICE_HOST_ADDRESSES="127.0.0.1", LIVECORE_HLS__RENDITIONS="source",
        LIVECORE_HLS__PACKAGING_PROCESSES="1",
    )  # fmt: skip
    env.update({f"LIVECORE_NODE__{k.upper()}": v for k, v in (node or {}).items()})
    env.update(given)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "livecore", "serve", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    served = ServedNode(name, proc, port)
    try:
        await _answers(served)
        yield served
    finally:
        await served.api.close()
        if proc.returncode is None:
            await served.kill_hard()


@contextlib.asynccontextmanager
async def served_nodes(
    names: tuple[str, ...], tmp: Path, services: Services, *, node: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[list[ServedNode]]:  # fmt: skip
    """`served_node` for each of `names`, all started at once (their start-ups overlap)."""
    async with contextlib.AsyncExitStack() as stack:
        async with asyncio.TaskGroup() as starting:  # one failing stops the others
            started = [
                starting.create_task(
                    stack.enter_async_context(served_node(n, tmp, services, node=node, env=env))
                )
                for n in names
            ]
        yield [task.result() for task in started]


async def _answers(served: ServedNode) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(served.url + "/readyz") as resp:
                    if resp.status == 200:
                        return
            assert served.proc.returncode is None, f"{served.name} exited:\n{served.log()}"
            assert time.monotonic() < deadline, f"{served.name} did not come up:\n{served.log()}"
            await asyncio.sleep(0.2)
