"""Chat joins: how fast one livecore process admits WebSocket viewers, beside a bare aiohttp
server doing nothing but the upgrade and one frame on the same machine.

    .venv/bin/python -m loadtests.bench_join [--viewers 10000] [--steady-rate 1000]
        [--processes 2] [--window 256] [--redis] [--skip-bare] [--profile-dir DIR]

A join is the WebSocket upgrade request until the first frame the client needs arrives:
livecore's `hello` (its user, the room's mode and the history), or the bare server's one
small frame. Everything runs on 127.0.0.1 in a temporary directory: an embedded PostgreSQL,
with --redis a redis-server, one `livecore serve` (limits raised: all viewers come from one
address, the join line opened wide so that the server's own speed is measured) and a
bare aiohttp server (uvloop, no access log, like `livecore serve`). Every
process it starts is stopped by its PID.

Three phases per server, each ending with every socket closed:

- burst: --viewers anonymous viewers join one public room as fast as the server takes them
  (each generator process keeps --window upgrades in flight): joins per second;
- steady: --viewers join at --steady-rate per second: join latency p50/p99/max;
- (livecore only) a logged-in burst: --viewers / 10 joins with a Bearer token.

The viewers are minimal WebSocket clients on asyncio Protocols in --processes generator
processes (spawn, uvloop). The report says how busy each generator process was (CPU time
over wall time): a phase where one was above 90% of a core measured the generator, and is
marked INVALID rather than reported as the server's figure. With --profile-dir, livecore
runs under py-spy (if installed) for the livecore burst, and its top frames are printed.

Bounded: --viewers <= the open-file limit, a 30 s deadline per join, a watchdog over the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import psutil
import uvloop

from loadtests.server import (
    free_port,
    post_json,
    scrape,
    stalls,
    start_server,
    stop_server,
    watchdog,
)
from loadtests.wsframes import server_frames, upgrade_answer

ROOT = Path(__file__).resolve().parent.parent
JOIN_TIMEOUT_S = 30.0
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
BUSY_LIMIT = 0.9  # a generator process above this share of a core makes a phase invalid
BARE_HELLO = '[{"type":"hello","user":null}]'


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _server_preexec() -> None:
    _raise_nofile()


def _quantile_ms(values_ns: list[int], q: float) -> float:
    if not values_ns:
        return float("nan")
    ordered = sorted(values_ns)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


# -- the bare baseline --------------------------------------------------------------------------


def _bare_server(port: int) -> None:
    """Upgrade, send one small frame, then read until the client leaves: the least a chat
    server can do for a join with aiohttp."""
    from aiohttp import web

    _raise_nofile()

    async def get_ws(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, compress=False)
        await ws.prepare(request)
        await ws.send_str(BARE_HELLO)
        async for _ in ws:
            pass
        return ws

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/ws/{stream}", get_ws)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    uvloop.run(serve())


# -- the viewers (generator processes) ---------------------------------------------------------


class _Viewer(asyncio.Protocol):
    """A WebSocket client that waits for its first text frame, then answers pings."""

    __slots__ = ("buf", "done", "request", "t0", "transport", "upgraded")

    def __init__(self, request: bytes, done: asyncio.Future[int]) -> None:
        self.request = request
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.t0 = time.perf_counter_ns()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError("closed before the first frame"))

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data, self.buf = self.buf + data, b""
        if not self.upgraded:
            answer = upgrade_answer(data)
            if answer is None:
                self.buf = data
                return
            if answer.status != 101:
                if not self.done.done():
                    self.done.set_exception(ConnectionError(f"HTTP {answer.status}"))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            data = answer.rest
        frames, used = server_frames(data)
        for opcode, payload in frames:
            if opcode == 1 and not self.done.done():
                self.done.set_result(time.perf_counter_ns() - self.t0)
            elif opcode == 9 and len(payload) < 126 and self.transport is not None:
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
        if used < len(data):
            self.buf = data[used:]


class _Worker:
    """One generator process: its share of each phase's viewers, told what to do by a pipe."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.open: list[_Viewer] = []

    @staticmethod
    def _request(port: int, path: str, token: str) -> bytes:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        return (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{auth}\r\n"
        ).encode()

    async def _one(
        self, port: int, request: bytes, latencies: list[int], results: Counter[str]
    ) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        viewer = _Viewer(request, done)
        self.open.append(viewer)
        try:
            async with asyncio.timeout(JOIN_TIMEOUT_S):
                await loop.create_connection(lambda: viewer, "127.0.0.1", port)
                latencies.append(await done)
            results["ok"] += 1
        except TimeoutError:
            results["timeout"] += 1
        except OSError as exc:  # ConnectionError included: a refusal or an early close
            results[str(exc.strerror or exc)] += 1

    async def run(
        self, port: int, path: str, tokens: list[str], count: int, rate: float, window: int,
        start_at: float,
    ) -> dict[str, Any]:  # fmt: skip
        """Join `count` viewers: at `rate` per second, or (rate 0) as fast as the server
        answers with `window` upgrades in flight."""
        loop = asyncio.get_running_loop()
        requests = [self._request(port, path, t) for t in tokens or [""]]
        latencies: list[int] = []
        results: Counter[str] = Counter()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        cpu0, t0 = time.process_time(), loop.time()
        if rate > 0:
            tasks = []
            for j in range(count):
                delay = t0 + j / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                request = requests[j % len(requests)]
                tasks.append(asyncio.create_task(self._one(port, request, latencies, results)))
            await asyncio.gather(*tasks)
        else:
            slots = asyncio.Semaphore(window)

            async def slot(j: int) -> None:
                async with slots:
                    await self._one(port, requests[j % len(requests)], latencies, results)

            await asyncio.gather(*(slot(j) for j in range(count)))
        wall = loop.time() - t0
        return {
            "results": dict(results), "latencies": latencies, "wall": wall,
            "busy": (time.process_time() - cpu0) / max(wall, 1e-9), "ended": time.time(),
        }  # fmt: skip

    def close_all(self) -> int:
        closed = 0
        for viewer in self.open:
            if viewer.transport is not None and not viewer.transport.is_closing():
                viewer.transport.abort()
                closed += 1
        self.open.clear()
        return closed

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, self.conn.recv)
            if command[0] == "run":
                self.conn.send(await self.run(*command[1:]))
            elif command[0] == "close":
                self.conn.send(self.close_all())
            elif command[0] == "quit":
                self.close_all()
                self.conn.send("bye")
                return


def _worker_main(conn: Connection) -> None:
    _raise_nofile()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops us
    uvloop.run(_Worker(conn).serve())


# -- the orchestrator --------------------------------------------------------------------------


@dataclass
class _Target:
    name: str
    port: int
    path: str
    proc: psutil.Process


@dataclass
class _Phase:
    joined: int
    failures: dict[str, int]
    joins_per_s: float
    latencies: list[int]
    busy: list[float]
    server_cpu: float  # share of one core over the phase
    server_cpu_s: float
    runtime: str  # livecore's loop lag and garbage collection during the phase

    @property
    def cpu_us_per_join(self) -> float:
        # What a join costs the server, whatever else the machine is doing: on a shared
        # machine the wall-clock rate says as much about the neighbours as about the server.
        return self.server_cpu_s / max(self.joined, 1) * 1e6

    @property
    def valid(self) -> bool:
        return max(self.busy) <= BUSY_LIMIT

    def line(self, label: str) -> str:
        p50, p99 = _quantile_ms(self.latencies, 0.5), _quantile_ms(self.latencies, 0.99)
        top = _quantile_ms(self.latencies, 1.0)
        busy = ", ".join(f"{b * 100:.0f}%" for b in self.busy)
        verdict = "" if self.valid else "  INVALID: a generator process saturated"
        return (
            f"{label:<28} {self.joined:>6} joined, {self.joins_per_s:>7.0f} joins/s;"
            f" latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {top:.1f} ms;"
            f" server CPU {self.server_cpu * 100:.0f}% of a core, {self.cpu_us_per_join:.0f} µs"
            f" per join (one core's worth: {1e6 / max(self.cpu_us_per_join, 1e-9):.0f}"
            f" joins/s); generator busy {busy}"
            f"{' failures ' + str(self.failures) if self.failures else ''}{verdict}"
            f"{chr(10) + ' ' * 29 + self.runtime if self.runtime else ''}"
        )


def _phase(
    conns: list[Connection], target: _Target, count: int, rate: float, window: int,
    tokens: list[str] | None = None,
) -> _Phase:  # fmt: skip
    processes = len(conns)
    start_at = time.time() + 0.5
    cpu0 = sum(target.proc.cpu_times()[:2])
    for w, conn in enumerate(conns):
        share = len(range(w, count, processes))
        conn.send(("run", target.port, target.path, tokens or [], share, rate / processes,
                   window, start_at))  # fmt: skip
    base = f"http://127.0.0.1:{target.port}"
    runtime0 = scrape(base) if target.name == "livecore" else None
    results = [conn.recv() for conn in conns]
    wall = max(r["ended"] for r in results) - start_at
    cpu = sum(target.proc.cpu_times()[:2]) - cpu0
    runtime = stalls(runtime0, scrape(base)) if runtime0 is not None else ""
    failures: Counter[str] = Counter()
    latencies: list[int] = []
    for r in results:
        failures.update(r["results"])
        latencies.extend(r["latencies"])
    joined = failures.pop("ok", 0)
    for conn in conns:
        conn.send(("close",))
    for conn in conns:
        conn.recv()
    return _Phase(
        joined, dict(failures), joined / max(wall, 1e-9), latencies,
        [r["busy"] for r in results], cpu / max(wall, 1e-9), cpu, runtime,
    )  # fmt: skip


def _wait_closed(base: str, deadline_s: float = 90.0) -> None:
    """Until the server counts no open chat socket (the last phase's closes are processed:
    thousands of sockets closing at once keep it busy for a while)."""
    import urllib.request

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"{base}/metrics", timeout=30) as resp:
                for line in resp.read().decode().splitlines():
                    name, _, value = line.partition(" ")
                    if name == "livecore_chat_connections" and float(value) == 0:
                        return
        except OSError:
            pass  # busy closing: ask again
        time.sleep(0.5)
    print(f"!! the server still counted open chat sockets after {deadline_s:.0f} s")


def _settle(target: _Target) -> None:
    time.sleep(1.0)
    if target.name == "livecore":
        _wait_closed(f"http://127.0.0.1:{target.port}")


def _py_spy() -> Path | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return Path(found) if Path(found).exists() else None


def _profile_summary(path: Path, top: int = 15) -> list[str]:
    """Share of samples per frame (anywhere on the stack) and per leaf frame."""
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1] for f in stack.split(";")[1:]]
        total += count
        if frames:
            leaves[frames[-1]] += count
        for f in set(frames):
            inclusive[f] += count
    out = [f"  {n / total * 100:5.1f}% on stack  {f}" for f, n in inclusive.most_common(top)]
    out += [f"  {n / total * 100:5.1f}% self      {f}" for f, n in leaves.most_common(top)]
    return out


def _register(base: str, name: str, creator: bool = False) -> dict[str, Any]:
    email = f"{name}-{time.time_ns()}-{secrets.token_hex(3)}@example.com"
    body = {"email": email, "password": "benchmark passphrase", "display_name": name,
            "creator": creator}  # fmt: skip
    return post_json(f"{base}/api/v1/auth/register", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=10_000, help="joins per phase")
    parser.add_argument("--steady-rate", type=float, default=1000.0, help="joins per second")
    parser.add_argument("--processes", type=int, default=2, help="generator processes")
    parser.add_argument("--window", type=int, default=256, help="upgrades in flight per"
                        " generator process in a burst")  # fmt: skip
    parser.add_argument("--redis", action="store_true", help="livecore with the Redis bus")
    parser.add_argument("--skip-bare", action="store_true", help="measure livecore only")
    parser.add_argument("--profile-dir", type=Path, help="py-spy livecore during its burst")
    args = parser.parse_args()
    nofile = _raise_nofile()
    if not 1 <= args.viewers <= nofile - 500:
        parser.error(f"--viewers must be between 1 and {nofile - 500} (open-file limit {nofile})")
    if not (1 <= args.processes <= 16 and 0 < args.steady_rate <= 50_000 and args.window >= 1):
        parser.error("--processes in [1, 16], --steady-rate in (0, 50000], --window >= 1")
    budget = int(240 + 4 * (30 + args.viewers / args.steady_rate + args.viewers / 500))

    sys.path.insert(0, str(ROOT))
    from livecore.store.embedded import EmbeddedPostgres
    from tests.support.services import RedisProcess

    with watchdog(budget), tempfile.TemporaryDirectory(prefix="livecore-join-") as tmp_name:
        tmp = Path(tmp_name)
        pg = EmbeddedPostgres(tmp / "postgres")
        redis: RedisProcess | None = None
        server: subprocess.Popen[bytes] | None = None
        ctx = multiprocessing.get_context("spawn")
        bare: multiprocessing.process.BaseProcess | None = None
        workers: list[multiprocessing.process.BaseProcess] = []
        conns: list[Connection] = []
        spy: subprocess.Popen[bytes] | None = None
        try:
            env = {
                "LIVECORE_DATABASE_URL": pg.start(),
                "LIVECORE_SECRET_KEY": secrets.token_urlsafe(48),
                "LIVECORE_CHAT__MAX_CONNECTIONS": str(args.viewers + 1000),
                "LIVECORE_CHAT__MAX_CONNECTIONS_PER_IP": str(args.viewers + 1000),
                # The join line would pace a burst at its admit_per_s: the server's own
                # speed is what is measured here.
                "LIVECORE_CHAT__ADMIT_PER_S": "1000000",
                "LIVECORE_CHAT__ADMIT_BURST": "1000000",
            }
            if args.redis:
                redis = RedisProcess(tmp / "redis")
                redis.start()
                env["LIVECORE_REDIS_URL"] = redis.url
            port = free_port()
            server = start_server(
                port, tmp / "node", tmp / "server.log", env=env, preexec=_server_preexec
            )
            base = f"http://127.0.0.1:{port}"
            creator = _register(base, "creator", creator=True)
            slug = f"premiere-{secrets.token_hex(4)}"
            post_json(f"{base}/api/v1/streams", {"slug": slug}, str(creator["token"]))
            tokens = [str(_register(base, f"viewer{i}")["token"]) for i in range(20)]
            targets = [_Target("livecore", port, f"/ws/{slug}", psutil.Process(server.pid))]
            if not args.skip_bare:
                bare_port = free_port()
                bare = ctx.Process(target=_bare_server, args=(bare_port,), daemon=True)
                bare.start()
                assert bare.pid is not None
                _wait_listening(bare_port)
                targets.insert(
                    0, _Target("bare aiohttp", bare_port, "/ws/bare", psutil.Process(bare.pid))
                )
            for _ in range(args.processes):
                parent, child = ctx.Pipe()
                worker = ctx.Process(target=_worker_main, args=(child,), daemon=True)
                worker.start()
                workers.append(worker)
                conns.append(parent)

            load0 = os.getloadavg()
            print(f"cores: {os.cpu_count()}; load average before: {load0[0]:.2f} {load0[1]:.2f};"
                  f" generator processes: {args.processes}; livecore bus:"
                  f" {'Redis' if args.redis else 'in-process'};"
                  f" open-file limit {nofile}")  # fmt: skip
            print(f"a join: WebSocket upgrade until the first frame (livecore: hello);"
                  f" burst window {args.window} per generator process")  # fmt: skip
            phases: dict[str, _Phase] = {}
            for target in targets:
                _phase(conns, target, min(500, args.viewers), 0, args.window)  # warm-up
                _settle(target)
                profiled = target.name == "livecore" and args.profile_dir is not None
                if profiled and (py_spy := _py_spy()) is not None:
                    assert args.profile_dir is not None
                    args.profile_dir.mkdir(parents=True, exist_ok=True)
                    spy = subprocess.Popen(
                        [str(py_spy), "record", "-p", str(target.proc.pid), "-f", "raw", "-r",
                         "200", "-o", str(args.profile_dir / "join-burst.txt")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                    time.sleep(1.0)
                phases[f"{target.name} burst"] = _phase(conns, target, args.viewers, 0, args.window)
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(60)
                    spy = None
                print(phases[f"{target.name} burst"].line(f"{target.name} burst"), flush=True)
                _settle(target)
                rate = args.steady_rate
                key = f"{target.name} at {rate:g}/s"
                phases[key] = _phase(conns, target, args.viewers, rate, args.window)
                print(phases[key].line(key), flush=True)
                _settle(target)
                if target.name == "livecore":
                    key = "livecore logged-in burst"
                    phases[key] = _phase(
                        conns, target, max(1, args.viewers // 10), 0, args.window, tokens
                    )
                    print(phases[key].line(key), flush=True)
                    _settle(target)
            _summary(phases, args)
            if args.profile_dir is not None and (args.profile_dir / "join-burst.txt").exists():
                print(f"py-spy of livecore during its burst ({args.profile_dir}/join-burst.txt):")
                for line in _profile_summary(args.profile_dir / "join-burst.txt"):
                    print(line)
            load1 = os.getloadavg()
            print(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
            for conn in conns:
                conn.send(("quit",))
                with contextlib.suppress(EOFError, OSError):
                    if conn.poll(30):
                        conn.recv()
        finally:
            if spy is not None and spy.poll() is None:
                spy.kill()
                spy.wait()
            for proc in workers:
                proc.join(10)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(5)
            if bare is not None and bare.is_alive():
                bare.terminate()
                bare.join(10)
            if server is not None:
                stop_server(server)
            if redis is not None:
                redis.stop()
            pg.stop()


def _wait_listening(port: int) -> None:
    import socket

    end = time.monotonic() + 30
    while time.monotonic() < end:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise SystemExit("the bare aiohttp server did not start")


def _summary(phases: dict[str, _Phase], args: argparse.Namespace) -> None:
    live = phases.get("livecore burst")
    bare = phases.get("bare aiohttp burst")
    steady = phases.get(f"livecore at {args.steady_rate:g}/s")
    print("\n== summary ==")
    if live is not None and bare is not None and bare.joins_per_s > 0:
        ratio = live.joins_per_s / bare.joins_per_s
        print(f"livecore {live.joins_per_s:.0f} joins/s = {ratio * 100:.0f}% of bare aiohttp"
              f" {bare.joins_per_s:.0f} joins/s (aim: >= 5000 and >= 80%)")  # fmt: skip
        print(f"server CPU per join: livecore {live.cpu_us_per_join:.0f} µs, bare aiohttp"
              f" {bare.cpu_us_per_join:.0f} µs: livecore at"
              f" {bare.cpu_us_per_join / max(live.cpu_us_per_join, 1e-9) * 100:.0f}% of the bare"
              " server's joins per CPU-second")  # fmt: skip
    if steady is not None:
        print(f"livecore at {args.steady_rate:g} joins/s to {args.viewers} viewers: join p99"
              f" {_quantile_ms(steady.latencies, 0.99):.1f} ms (aim: <= 50 ms)")  # fmt: skip
    invalid = [k for k, p in phases.items() if not p.valid]
    if invalid:
        print(f"INVALID (a generator process above {BUSY_LIMIT * 100:.0f}% of a core): {invalid}")


if __name__ == "__main__":
    main()
