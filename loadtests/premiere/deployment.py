"""What a premiere plays against: livecore nodes, Redis, PostgreSQL and a Stripe-shaped peer,
all started by the tool on 127.0.0.1 and stopped by their PIDs; or an existing deployment
given by URL (then nothing is started and no fault can be injected).

The faults a scenario names are methods here: each acts on a process this object started.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from livecore.hls.packaging_host import PROCESS_NAME as PACKAGING_PROCESS
from loadtests.premiere.scenario import Scenario
from loadtests.server import ROOT, free_port, start_server, stop_server
from tests.support.services import RedisProcess
from tests.support.stripe_peer import StripePeer

WEBHOOK_SECRET = "whsec_premiere"


def raise_nofile() -> None:
    """Lift this process's open-file limit to its hard limit: thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Deployment:
    """The nodes' public URLs (`bases`), and the processes behind them when started here."""

    def __init__(self, scenario: Scenario, tmp: Path) -> None:
        self.scenario = scenario
        self.tmp = tmp
        self.bases: list[str] = list(scenario.deployment.urls)
        self.external = bool(self.bases)
        self.nodes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.redis: RedisProcess | None = None
        self.peer: StripePeer | None = None
        self._pg: Any = None
        self.dsn = ""
        self.env: dict[str, str] = {}
        self.killed: set[int] = set()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.external:
            return
        sys.path.insert(0, str(ROOT))
        from livecore.store.embedded import EmbeddedPostgres

        self._pg = EmbeddedPostgres(self.tmp / "postgres", announce=False)
        self.dsn = await asyncio.to_thread(self._pg.start)
        self.redis = RedisProcess(self.tmp / "redis")
        await asyncio.to_thread(self.redis.start)
        self.peer = StripePeer()
        await self.peer.start()
        joins = self.scenario.joins
        self.env = {
            "LIVECORE_DATABASE_URL": self.dsn,
            "LIVECORE_REDIS_URL": self.redis.url,
            "LIVECORE_SECRET_KEY": secrets.token_urlsafe(48),
            "LIVECORE_STRIPE__SECRET_KEY": "sk_test_premiere",
            "LIVECORE_STRIPE__WEBHOOK_SECRET": WEBHOOK_SECRET,
            "LIVECORE_STRIPE__API_BASE": self.peer.url,
            # Every simulated viewer comes from 127.0.0.1: the per-address limits would
            # measure the simulation, not the server.
            "LIVECORE_CHAT__MAX_CONNECTIONS_PER_IP": str(joins.chat_viewers + 2000),
            "LIVECORE_CHAT__MAX_CONNECTIONS": str(max(20_000, joins.chat_viewers + 2000)),
            "LIVECORE_CHAT__RATE_BURST": "1000",
            "LIVECORE_CHAT__RATE_PER_S": "1000",
            "LIVECORE_CHAT__INBOUND_PER_S": "1000",
            "LIVECORE_TIPS__VIEWER_TIPS_PER_MINUTE": "10000",
            "LIVECORE_TIPS__NEW_ACCOUNT_HOURS": "0",
            "LIVECORE_LOG_LEVEL": "warning",
        }
        for key, value in self.scenario.deployment.settings:
            self.env["LIVECORE_" + key.upper().replace(".", "__")] = value
        for n in range(self.scenario.deployment.nodes):
            port = free_port()
            log = self.tmp / f"node{n}.log"
            env = {**self.env, "LIVECORE_NODE__ID": f"node{n}"}
            proc = await asyncio.to_thread(
                start_server, port, self.tmp / f"node{n}", log, env=env, preexec=raise_nofile
            )
            self.nodes.append(proc)
            self.logs.append(log)
            self.bases.append(f"http://127.0.0.1:{port}")

    async def stop(self) -> None:
        for i, proc in enumerate(self.nodes):
            if i not in self.killed:
                await asyncio.to_thread(stop_server, proc)
        if self.peer is not None:
            await self.peer.close()
        if self.redis is not None:
            await asyncio.to_thread(self.redis.stop)
        if self._pg is not None:
            await asyncio.to_thread(self._pg.stop)

    def alive(self, node: int) -> bool:
        return node not in self.killed

    def processes(self) -> dict[str, int]:
        """What the monitor samples: each node (with its worker processes), Redis, PostgreSQL."""
        out = {f"node{i}": p.pid for i, p in enumerate(self.nodes) if i not in self.killed}
        if self.redis is not None and self.redis._proc is not None:
            out["redis"] = self.redis._proc.pid
        if self._pg is not None and self._pg.pid() is not None:
            out["postgres"] = int(self._pg.pid())
        return out

    def ledger_check(self) -> dict[str, Any]:
        """`livecore ledger check --json` against the shared database."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECORE_")}
        env["LIVECORE_DATABASE_URL"] = self.dsn
        env["LIVECORE_DATA_DIR"] = str(self.tmp / "cli")
        done = subprocess.run(
            [sys.executable, "-m", "livecore", "ledger", "check", "--json"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if not done.stdout:
            return {"ok": False, "error": done.stderr[-2000:]}
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    # -- faults -------------------------------------------------------------------------

    async def kill_node(self, node: int) -> str:
        proc = self.nodes[node]
        self.killed.add(node)
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        # Its worker processes lose their parent's pipes and end; any left are ended here.
        for child in _children(proc.pid):
            child.kill()
        return f"kill -9 node{node} (pid {proc.pid})"

    async def restart_redis(self) -> str:
        assert self.redis is not None
        await asyncio.to_thread(self.redis.stop)
        await asyncio.sleep(1.0)  # down for a moment, as a restart is
        await asyncio.to_thread(self.redis.start)
        return "Redis restarted"

    async def restart_postgres(self) -> str:
        assert self._pg is not None
        pid = self._pg.pid()
        await asyncio.to_thread(self._pg.stop)
        await asyncio.sleep(1.0)
        dsn = await asyncio.to_thread(self._pg.start)
        if dsn != self.dsn:
            return f"PostgreSQL restarted (pid {pid}) at a new address: nodes cannot reconnect"
        return f"PostgreSQL restarted (was pid {pid})"

    async def kill_packager(self, node: int) -> str:
        """kill -9 every packaging process of the node: whichever hosts the source's (each
        process hosts some of the broadcast's renditions)."""
        workers = [c for c in _children(self.nodes[node].pid) if _is_packager(c)]
        if not workers:
            return f"node{node} had no packaging process to kill"
        for worker in workers:
            worker.kill()
        pids = ", ".join(str(w.pid) for w in workers)
        return f"kill -9 the packaging processes of node{node} (pid {pids})"

    async def stripe_down(self, seconds: float) -> str:
        assert self.peer is not None
        await self.peer.stop_listening()
        asyncio.get_running_loop().call_later(
            seconds, lambda: asyncio.ensure_future(self._stripe_up())
        )
        return f"Stripe unreachable for {seconds:g} s"

    async def _stripe_up(self) -> None:
        if self.peer is not None:
            await self.peer.start_listening()


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _is_packager(proc: psutil.Process) -> bool:
    """A node's packaging process: it calls itself so (the other spawned workers, the
    transcoders and the thumbnails' pool, do not)."""
    try:
        return proc.name() == PACKAGING_PROCESS
    except psutil.Error:
        return False
