"""The floor under bench_edge's edge CPU: what a bare aiohttp server costs per request when it
answers LL-HLS viewers from bytes it already holds.

    .venv/bin/python -m loadtests.bench_edge_floor [--viewers 250] [--seconds 15] [--processes 2]

One server process (aiohttp on uvloop, no access log, no middleware, one route, as
`livecore serve` runs aiohttp) answers every request under /hls/ with a body kept in memory:
a 4 KB playlist for `index.m3u8` and a 64 KB part (a 200 ms part of a 2.5 Mb/s stream) for
anything else, with the headers livecore's edge sends. The viewers are bench_edge's clients
(loadtests.edge_viewers' keep-alive HTTP/1.1 connection): every 200 ms, all at once as when a
part is published, each asks for the playlist and then the part. It prints the server's CPU
(utime+stime, /proc) per request and per 100 viewers, and how busy each generator was: compare
with bench_edge's "µs of edge CPU per viewer request" on the same machine at the same time.
Bounded: --viewers <= 5000, --seconds <= 120; the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from loadtests.bench_edge import BUSY_LIMIT
from loadtests.edge_viewers import HttpConnection, HttpError
from loadtests.server import free_port

PART_S = 0.2
PLAYLIST = b"#EXTM3U\n" + b'#EXT-X-PART:DURATION=0.2,URI="part-1-1.m4s"\n' * 90
PART = bytes(64 * 1024)
HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag, Age",
    "Cache-Control": "public, max-age=31536000, immutable",
    "ETag": '"0123456789abcdef01234567"',
}
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _serve(port: int, ready: Any) -> None:
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        if request.match_info["file"] == "index.m3u8":
            return web.Response(body=PLAYLIST, headers=HEADERS,
                                content_type="application/vnd.apple.mpegurl")  # fmt: skip
        return web.Response(body=PART, headers=HEADERS, content_type="video/iso.segment")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/hls/{stream}/{rendition}/{file}", answer)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        ready.set()
        await asyncio.sleep(3600)  # stopped by its parent

    uvloop.run(main())


@dataclass
class _Result:
    requests: int
    errors: int
    cpu_s: float
    wall_s: float


async def _viewers(port: int, count: int, start_at: float, seconds: float) -> _Result:
    loop = asyncio.get_running_loop()
    result = _Result(0, 0, 0.0, 0.0)
    end = start_at + seconds

    async def one() -> None:
        _, conn = await loop.create_connection(HttpConnection, "127.0.0.1", port)
        try:
            for tick in range(int(seconds / PART_S) + 1):  # bounded: one pair per part
                await asyncio.sleep(max(0.0, start_at + tick * PART_S - time.time()))
                if time.time() > end:
                    return
                for path in ("/hls/s/source/index.m3u8?_HLS_msn=1&_HLS_part=1",
                             "/hls/s/source/part-1-1.m4s"):  # fmt: skip
                    status, _ = await conn.get(path)
                    result.requests += 1
                    result.errors += status != 200
        except (HttpError, OSError):
            result.errors += 1
        finally:
            if conn.transport is not None:
                conn.transport.close()

    cpu0, wall0 = time.process_time(), time.time()
    await asyncio.gather(*(one() for _ in range(count)))
    result.cpu_s, result.wall_s = time.process_time() - cpu0, time.time() - wall0
    return result


def _generator(conn: Connection, port: int, count: int, start_at: float, seconds: float) -> None:
    conn.send(uvloop.run(_viewers(port, count, start_at, seconds)))


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=250)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--processes", type=int, default=2, help="viewer generator processes")
    args = parser.parse_args()
    if not (1 <= args.viewers <= 5000 and 0 < args.seconds <= 120 and 1 <= args.processes <= 8):
        parser.error("--viewers in [1, 5000], --seconds in (0, 120], --processes in [1, 8]")
    ctx = multiprocessing.get_context("spawn")
    port = free_port()
    ready = ctx.Event()
    server = ctx.Process(target=_serve, args=(port, ready), daemon=True)
    server.start()
    gens = []
    try:
        if not ready.wait(60) or server.pid is None:
            raise SystemExit("the bare server did not start")
        start_at = time.time() + 3.0
        per = [args.viewers // args.processes + (i < args.viewers % args.processes)
               for i in range(args.processes)]  # fmt: skip
        for count in per:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_generator, args=(child, port, count, start_at,
                                                        args.seconds), daemon=True)  # fmt: skip
            proc.start()
            gens.append((proc, parent))
        load = os.getloadavg()
        time.sleep(max(0.0, start_at - time.time()))
        cpu0, wall0 = _cpu_s(server.pid), time.time()
        results = [c.recv() for _, c in gens if c.poll(args.seconds + 60)]
        cpu, wall = _cpu_s(server.pid) - cpu0, time.time() - wall0
    finally:
        for proc, _ in gens:
            proc.join(10)
        if server.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, 15)
        server.join(10)
    requests = sum(r.requests for r in results)
    print(f"bare aiohttp, {args.viewers} viewers in {len(results)} generator processes,"
          f" {requests / wall:,.0f} requests/s over {wall:.1f} s,"
          f" {sum(r.errors for r in results)} errors")  # fmt: skip
    print(f"  server CPU {cpu / wall * 100:.0f}% of one core: {cpu / max(1, requests) * 1e6:.0f}"
          f" µs per request, {cpu / wall * 100 / args.viewers * 100:.1f}% of one core per 100"
          " viewers (a playlist and a part every 200 ms each)")  # fmt: skip
    for i, r in enumerate(results):
        busy = r.cpu_s / max(r.wall_s, 1e-9)
        verdict = " INVALID: saturated, it measured itself" if busy > BUSY_LIMIT else ""
        print(f"  generator {i}: CPU {busy * 100:.0f}% of one core{verdict}")
    now = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} at the start,"
          f" {now[0]:.2f} at the end (shared: figures are noisy)")  # fmt: skip


if __name__ == "__main__":
    main()
