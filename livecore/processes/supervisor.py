"""The parent of `livecore serve --processes N`: starts N children and keeps them running.

Before any child starts: the sockets are bound (one error, once, if a port is taken), the
secret key is generated if there is none, and the private redis-server is started when no
Redis is configured (cli.py has started the embedded PostgreSQL, serve.py applied the
migrations). Then each child runs `livecore serve` on its sockets as node `<box>/<i>`: the
first alone (it finishes the recordings the box was writing when it last stopped), the others
once it is ready; none of them, nor the first started again, does that recovery. A child
started again after it died is told so: it ends the broadcasts its own node id still carries
and finishes their recordings (cluster.reaper), leaving its siblings' alone.

A child that exits while the server runs is reported and started again (after 1 s, doubling
to 30 s while it keeps dying within a minute of starting); one that exits before it was ever
ready (a wrong setting, a database that refuses it) stops the whole server with exit code 1.
SIGTERM or SIGINT reach every child (a second one too); the parent waits for them
(node.drain_grace_s, shutdown_timeout_s and 30 s more, then kills), and stops the redis-server last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from livecore.cluster.node import NodeInfo, process_node
from livecore.config import Config
from livecore.processes.child import READY, Supervised
from livecore.processes.redis_server import PrivateRedis
from livecore.processes.sockets import own_listeners, shared_listeners
from livecore.secretkey import stored_secret

logger = logging.getLogger(__name__)

EXIT_FAILED = 1
_FIRST_BACKOFF_S = 1.0
_MAX_BACKOFF_S = 30.0
_STABLE_S = 60.0  # a child up this long has its restart delay reset
_STOP_MARGIN_S = 30.0  # beyond shutdown_timeout_s, for the children's cleanup contexts


@dataclass
class _Slot:
    index: int
    node: NodeInfo
    listen: socket.socket
    internal: socket.socket
    proc: asyncio.subprocess.Process | None = None


def supervise(
    config: Config, count: int, dsn: str, *, config_path: Path | None, log_format: str | None
) -> int:
    """Run `count` children until SIGTERM/SIGINT; the exit code of the whole server.

    Raises ListenError or RedisServerError (one line for the operator) before any child starts.
    """
    shared = shared_listeners(config.host, config.port, count, config.listen_backlog)
    port = shared[0].getsockname()[1]
    try:
        own = own_listeners(config.host, config.node.internal_port, count, config.listen_backlog)
    except BaseException:
        for sock in shared:
            sock.close()
        raise
    slots = [
        _Slot(i + 1, process_node(config, i + 1, port, own[i].getsockname()[1]), shared[i], own[i])
        for i in range(count)
    ]
    redis: PrivateRedis | None = None
    try:
        if not config.secret_key:
            stored_secret(config.data_path / "secret_key")  # made once, before they race for it
        redis_url = config.redis_url
        if not redis_url:
            redis = PrivateRedis(config.data_path / "run")
            redis_url = redis.start()
        env = {
            **os.environ, "LIVECORE_DATABASE_URL": dsn, "LIVECORE_REDIS_URL": redis_url,
            "LIVECORE_PORT": str(port), "LIVECORE_PROCESSES": "1",
        }  # fmt: skip
        argv = [sys.executable, "-m", "livecore"]
        if config_path is not None:
            argv += ["--config", str(config_path)]
        argv.append("serve")
        if log_format is not None:
            argv += ["--log-format", log_format]
        runner = _Supervisor(config, slots, argv, env, f"http://{config.host}:{port}")
        return asyncio.run(runner.run())
    finally:
        if redis is not None:
            redis.stop()
        for slot in slots:
            slot.listen.close()
            slot.internal.close()


class _Supervisor:
    def __init__(
        self, config: Config, slots: list[_Slot], argv: list[str], env: dict[str, str],
        public: str,
    ) -> None:  # fmt: skip
        self._config = config
        self._slots = slots
        self._argv = argv
        self._env = env
        self._public = public
        self._stop = asyncio.Event()
        self._signal = signal.SIGTERM  # what the children get: the signal the parent got
        self._failed = False
        self._ready: set[int] = set()
        self._first_ready = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signalled, sig)
        keepers = [asyncio.create_task(self._keep(slot)) for slot in self._slots]
        try:
            await self._stop.wait()
        finally:
            # No child is started after this; the ones running are stopped below.
            for task in keepers:
                task.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
        logger.info("shutting down %d processes", len(self._slots))
        clean = await self._stop_children()
        return EXIT_FAILED if self._failed or not clean else 0

    async def _keep(self, slot: _Slot) -> None:
        """Run one child, again and again, until the server stops."""
        backoff = _FIRST_BACKOFF_S
        if slot.index > 1:
            # The first process starts alone: it finishes what the box was recording when it
            # last stopped, before any process takes publishers (recordings.recover_on_start).
            await _first(self._first_ready, self._stop)
        recover = slot.index == 1
        while not self._stop.is_set():
            started = time.monotonic()
            line = await self._spawn(slot, recover=recover)
            # A process started again: its siblings may be recording, so it ends only what
            # its own node id still carries (as every node does at start, cluster/reaper.py).
            recover = False
            proc = slot.proc
            assert proc is not None
            try:
                if not await _ready(line):
                    code = await proc.wait()
                    if not self._stop.is_set():
                        logger.error(
                            "process %d (pid %d) %s before it was ready: stopping the server",
                            slot.index, proc.pid, _how(code),
                        )  # fmt: skip
                        self._failed = True
                        self._stop.set()
                    return
                self._became_ready(slot)
                self._first_ready.set()
                code = await proc.wait()
            finally:
                line.close()
            if self._stop.is_set():
                return
            if time.monotonic() - started > _STABLE_S:
                backoff = _FIRST_BACKOFF_S
            logger.error("process %d (pid %d, node %s) %s; starting it again in %.0f s",
                         slot.index, proc.pid, slot.node.id, _how(code), backoff)  # fmt: skip
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._stop.wait()
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def _signalled(self, sig: signal.Signals) -> None:
        if not self._stop.is_set():
            self._signal = sig
            self._stop.set()
            return
        # A second signal means what it means to one process (stop now rather than drain):
        # it is passed on at once.
        logger.info("%s again: passing it on to the processes", sig.name)
        self._send(sig)

    def _send(self, sig: signal.Signals) -> None:
        for slot in self._slots:
            if slot.proc is not None and slot.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)

    def _became_ready(self, slot: _Slot) -> None:
        first = len(self._ready) < len(self._slots)
        self._ready.add(slot.index)
        if first and len(self._ready) == len(self._slots):
            pids = ", ".join(str(s.proc.pid) for s in self._slots if s.proc is not None)
            logger.info("livecore listening on %s with %d processes (pids %s)",
                        self._public, len(self._slots), pids)  # fmt: skip

    async def _spawn(self, slot: _Slot, *, recover: bool) -> socket.socket:
        parent_end, child_end = socket.socketpair()
        supervised = Supervised(
            slot.index, len(self._slots), slot.listen.fileno(), slot.internal.fileno(),
            child_end.fileno(),
        )  # fmt: skip
        env = {**self._env, "LIVECORE_NODE__ID": slot.node.id,
               "LIVECORE_NODE__INTERNAL_URL": slot.node.internal_url,
               "LIVECORE_RECORDINGS__RECOVER_ON_START": "true" if recover else "false"}  # fmt: skip
        try:
            # Its own session: a Ctrl-C in the terminal reaches only this parent, which
            # passes it on; the line tells the child when this parent is gone.
            slot.proc = await asyncio.create_subprocess_exec(
                *self._argv, "--supervised", supervised.option(), env=env,
                pass_fds=(slot.listen.fileno(), slot.internal.fileno(), child_end.fileno()),
                start_new_session=True, stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            child_end.close()
        logger.info("process %d of %d started (pid %d): node %s, own address %s",
                    slot.index, len(self._slots), slot.proc.pid, slot.node.id,
                    slot.node.internal_url)  # fmt: skip
        return parent_end

    async def _stop_children(self) -> bool:
        """The parent's signal (SIGTERM when it stops on its own) to every child, then wait;
        kill what is left. True: all exited cleanly."""
        running = [s.proc for s in self._slots if s.proc is not None and s.proc.returncode is None]
        self._send(self._signal)
        waits = [asyncio.ensure_future(p.wait()) for p in running]
        if not waits:
            return True
        # A child first drains its live streams (up to node.drain_grace_s), then shuts down.
        stop_s = self._config.node.drain_grace_s + self._config.shutdown_timeout_s
        _, late = await asyncio.wait(waits, timeout=stop_s + _STOP_MARGIN_S)
        for proc in running:
            if proc.returncode is None:
                logger.error("process pid %d did not stop in time; killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        await asyncio.gather(*waits)
        for slot in self._slots:
            if slot.proc is not None and slot.proc in running:
                logger.info("process %d (pid %d) %s", slot.index, slot.proc.pid,
                            _how(slot.proc.returncode or 0))  # fmt: skip
        return not late and all(p.returncode == 0 for p in running)


async def _first(*events: asyncio.Event) -> None:
    """Wait until any of `events` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _ready(line: socket.socket) -> bool:
    """Whether the child says it is ready before its end of the line closes."""
    line.setblocking(False)
    loop = asyncio.get_running_loop()
    received = b""
    while len(received) < len(READY):
        chunk = await loop.sock_recv(line, len(READY) - len(received))
        if not chunk:
            return False
        received += chunk
    return received == READY


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
