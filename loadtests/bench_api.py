"""Authenticated API throughput: GET /api/v1/me and the live-stream list under concurrency.

    .venv/bin/python -m loadtests.bench_api [--concurrency 64] [--seconds 15] [--url URL]

Without --url it starts its own `livecore serve` (embedded PostgreSQL in a temporary
directory, 127.0.0.1 on a free port) and stops it afterwards. The load comes from `wrk`
(Debian package `wrk`) when it is installed, since a C client leaves the CPU to the server;
otherwise from Python client processes. The generator's CPU is printed either way. Every
run is bounded by --seconds (and, for the Python client, --max-requests).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import uvloop

from loadtests.server import free_port, post_json, start_server, stop_server

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark passphrase"


@dataclass
class WorkerResult:
    latencies_s: list[float]
    errors: int
    cpu_s: float


def _prepare(base: str, live_streams: int) -> str:
    """A creator with some live streams; returns a session token."""
    email = f"bench-{time.time_ns()}@example.com"
    name = email.split("@")[0]  # display names are unique
    user = post_json(
        f"{base}/api/v1/auth/register",
        {"email": email, "password": PASSWORD, "display_name": name, "creator": True},
    )
    token = str(user["token"])
    for i in range(live_streams):
        post_json(f"{base}/api/v1/streams", {"slug": f"bench-{time.time_ns() % 10**9}-{i}"}, token)
    return token


async def _worker_async(
    base: str, token: str, concurrency: int, deadline: float, max_requests: int
) -> WorkerResult:
    latencies: list[float] = []
    errors = 0
    paths = ("/api/v1/me", "/api/v1/streams?state=live")
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:

        async def loop(n: int) -> None:
            nonlocal errors
            i = n
            while time.monotonic() < deadline and len(latencies) < max_requests:
                start = time.perf_counter()
                try:
                    async with session.get(paths[i % 2]) as resp:
                        await resp.read()
                        if resp.status != 200:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - start)
                i += 1

        await asyncio.gather(*(loop(n) for n in range(concurrency)))
    return WorkerResult(latencies, errors, time.process_time())


def _worker(args: tuple[str, str, int, float, int]) -> WorkerResult:
    return uvloop.run(_worker_async(*args))


_WRK_SCRIPT = """
local paths = {"/api/v1/me", "/api/v1/streams?state=live"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % 2) + 1])
end
"""


def _wrk_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _run_wrk(base: str, token: str, concurrency: int, seconds: float, tmp: Path) -> None:
    script = tmp / "paths.lua"
    script.write_text(_WRK_SCRIPT)
    started = time.monotonic()
    usage0 = os.times()
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(concurrency), "-d", f"{int(seconds)}s", "--latency",
         "-s", str(script), "-H", f"Authorization: Bearer {token}", base],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout  # fmt: skip
    usage1 = os.times()
    elapsed = time.monotonic() - started
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    gen_cpu = (usage1.children_user + usage1.children_system) - (
        usage0.children_user + usage0.children_system
    )
    print(f"load generator: wrk, {concurrency} connections")
    print(f"requests: {total} in {elapsed:.1f}s, errors: {errors}")
    print(f"throughput: {total / elapsed:,.0f} requests/s")
    print(f"latency p50: {_wrk_ms(out, '50%'):.2f} ms, p99: {_wrk_ms(out, '99%'):.2f} ms")
    print(f"load-generator CPU: {gen_cpu / elapsed * 100:.0f}% of one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running livecore (default: start one)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--live-streams", type=int, default=20)
    parser.add_argument("--log-level", default="info", help="server log level when started here")
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    args = parser.parse_args()
    args.seconds = min(args.seconds, 300.0)

    with tempfile.TemporaryDirectory(prefix="livecore-bench-") as tmp_name:
        server = None
        base = args.url
        if base is None:
            port = free_port()
            tmp = Path(tmp_name)
            server = start_server(
                port, tmp / "var", tmp / "server.log", env={"LIVECORE_LOG_LEVEL": args.log_level}
            )
            base = f"http://127.0.0.1:{port}"
        try:
            token = _prepare(base, args.live_streams)
            server_proc = psutil.Process(server.pid) if server else None
            server_cpu0 = sum(server_proc.cpu_times()[:2]) if server_proc else 0.0
            print(f"cores: {os.cpu_count()}")
            if shutil.which("wrk") and not args.python_client:
                started = time.monotonic()
                _run_wrk(base, token, args.concurrency, args.seconds, Path(tmp_name))
                elapsed = time.monotonic() - started
                if server_proc is not None:
                    server_cpu = sum(server_proc.cpu_times()[:2]) - server_cpu0
                    print(f"server CPU: {server_cpu / elapsed * 100:.0f}% of one core")
                return
            per = max(1, args.concurrency // args.processes)
            deadline = time.monotonic() + args.seconds
            job = (base, token, per, deadline, args.max_requests // args.processes)
            started = time.monotonic()
            with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
                results = pool.map(_worker, [job] * args.processes)
            elapsed = time.monotonic() - started
            server_cpu = sum(server_proc.cpu_times()[:2]) - server_cpu0 if server_proc else 0.0
        finally:
            if server is not None:
                stop_server(server)

    lat = sorted(x for r in results for x in r.latencies_s)
    errors = sum(r.errors for r in results)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    print(f"concurrency: {per * args.processes} over {args.processes} client processes")
    print(f"requests: {len(lat)} in {elapsed:.1f}s, errors: {errors}")
    print(f"throughput: {len(lat) / elapsed:,.0f} requests/s")
    print(f"latency p50: {q[49] * 1000:.2f} ms, p99: {q[98] * 1000:.2f} ms")
    if server is not None:
        print(f"server CPU: {server_cpu / elapsed * 100:.0f}% of one core")
    print(f"load-generator CPU: {sum(r.cpu_s for r in results) / elapsed * 100:.0f}% of one core")


if __name__ == "__main__":
    main()
