"""`livecore serve`: the server in this process, or the parent of several (`--processes`).

cli.py reads the settings and starts the embedded database; this module runs the app on its
sockets until SIGTERM/SIGINT, or hands the children to processes.supervisor.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from pathlib import Path

import uvloop
from aiohttp import web

from livecore.app import create_app
from livecore.appkeys import DRAIN
from livecore.config import Config
from livecore.deadlines import server_options
from livecore.processes.child import ParentLine, Supervised
from livecore.processes.redis_server import RedisServerError
from livecore.processes.sockets import ListenError
from livecore.processes.supervisor import supervise
from livecore.server import AppRunner
from livecore.store import apply_migrations

logger = logging.getLogger(__name__)

EXIT_FAILED = 1


def serve_one(config: Config, dsn: str, supervised: Supervised | None = None) -> int:
    """Serve until SIGTERM/SIGINT: on host:port, or (`supervised`) on the sockets of one of
    several processes."""
    return uvloop.run(_serve_async(config, dsn, supervised))


def serve_many(
    config: Config, dsn: str, *, config_path: Path | None, log_format: str | None
) -> int:
    """Serve with `config.processes` processes: the parent's side, until SIGTERM/SIGINT."""
    # Once, before the processes start (each would otherwise wait its turn for the lock).
    report = uvloop.run(apply_migrations(dsn))
    if report.applied:
        logger.info("migrations applied: %s", ", ".join(report.applied))
    try:
        return supervise(config, config.processes, dsn, config_path=config_path,
                         log_format=log_format)  # fmt: skip
    except (ListenError, RedisServerError) as exc:
        logger.error("%s", exc)
        return EXIT_FAILED


async def _serve_async(config: Config, dsn: str, supervised: Supervised | None = None) -> int:
    app = create_app(config, database_url=dsn)
    # Answers even the requests aiohttp cannot parse in the JSON error shape.
    runner = AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=config.shutdown_timeout_s,
        **server_options(config),
    )  # fmt: skip
    # SIGTERM drains the node first (livecore.cluster.drain); a second one, or SIGINT, stops
    # it at once.
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        (hurry if stop.is_set() or sig == signal.SIGINT else stop).set()
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    await runner.setup()
    try:
        if supervised is not None:
            await _serve_supervised(runner, config, supervised, stop)
        else:
            site = web.TCPSite(
                runner, config.host, config.port, shutdown_timeout=config.shutdown_timeout_s,
                backlog=config.listen_backlog,
            )  # fmt: skip
            try:
                await site.start()
            except OSError as exc:
                logger.error("cannot listen on %s:%d: %s", config.host, config.port, exc.strerror)
                return EXIT_FAILED
            logger.info("livecore listening on http://%s:%d", config.host, config.port)
        # Everything built so far lives as long as the process: keep it out of the cyclic
        # garbage collector's scans, which otherwise revisit it on every full collection.
        gc.freeze()
        # A full collection walks every open socket's objects (over a second at 10,000 chat
        # viewers on a small machine). CPython's default runs one after every 10 middle
        # collections once the heap grew by a quarter, so a join ramp from 0 to 10,000
        # viewers got 8 of them; after every 100 it gets one (bench_join: 2,400 -> 3,900
        # joins/s on 2 cores). Cyclic garbage waits longer; refcounting frees the rest at once.
        gc.set_threshold(700, 10, 100)
        await stop.wait()
        if not hurry.is_set():
            await app[DRAIN].run(hurry)
        logger.info("shutting down")
    finally:
        # Stops accepting, runs on_shutdown, lets in-flight requests finish within the
        # shutdown timeout, then closes every cleanup context in reverse order.
        await runner.cleanup()
    return 0


async def _serve_supervised(
    runner: AppRunner, config: Config, supervised: Supervised, stop: asyncio.Event
) -> None:
    """Serve on the sockets the parent bound: a share of the public port and our own."""
    for sock in (supervised.listen_socket(), supervised.internal_socket()):
        site = web.SockSite(runner, sock, shutdown_timeout=config.shutdown_timeout_s,
                            backlog=config.listen_backlog)  # fmt: skip
        await site.start()
    line = ParentLine(supervised.line_fd)
    line.on_parent_gone(stop.set)  # a parent killed outright leaves no one to stop us
    logger.info(
        "process %d of %d listening on http://%s:%d (shared) as node %s, own address %s",
        supervised.index, supervised.count, config.host, config.port, config.node.id,
        config.node.internal_url,
    )  # fmt: skip
    line.ready()
