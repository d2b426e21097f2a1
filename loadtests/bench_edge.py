"""HLS edge benchmark: one origin node, one edge node, one 720p publisher, many LL-HLS viewers.

    .venv/bin/python -m loadtests.bench_edge [--viewers 500] [--seconds 20] [--processes 2]

Everything runs on 127.0.0.1 in a temporary directory and is stopped afterwards by PID: one
embedded PostgreSQL and one redis-server (started here, shared by both nodes), and two
`livecore serve` processes: the origin (node id `origin`) and the edge (`edge`), each with
its internal URL, ICE host candidates restricted to 127.0.0.1, and the source rendition only.

One aiortc publisher (bench_ingest's: a 720p30 H.264 clip at ~2.5 Mb/s plus Opus, looped in
real time over WHIP) publishes on the origin. --viewers LL-HLS clients (loadtests.edge_viewers,
spread over --processes generator processes) join on the edge over --ramp seconds and follow
the live playlist with blocking reloads (_HLS_msn/_HLS_part), fetching every part. Two more
clients, one on the origin and one on the edge, follow the same playlist and read the time
each frame left the publisher (bench_ingest's SEI stamp, written into every access unit as
it is sent), as bench_glass reads a clock drawn into the picture: how long after its capture
each frame is in a player's hands, via the origin and via the edge.

Over a window of --seconds after --warmup, it prints, with the core count and load average:

- requests the origin received per part produced, from the origin's own request counters
  (livecore_hls_requests_total) less the requests of the client following the origin,
  and the edge's upstream/joined/cached counts (the aim: at most one request per part);
- glass to glass via the edge vs via the origin (the aim: within 150 ms);
- the edge's CPU per 100 viewers (utime+stime from /proc of the edge and its children);
- part delivery on the edge: part request times, and from a part being listed on the origin
  to it being in each viewer's hands;
- errors (viewers', followers', the publisher's, warnings in each node's log) and how busy
  each generator process was (CPU and event-loop wake-up lateness); a generator above 90% of
  a core makes the run INVALID (it measured itself).

With --py-spy FILE the edge is sampled by py-spy (installed in the venv by hand: it is not a
livecore dependency) over the window, as raw folded stacks. loadtests.bench_edge_floor measures
what a bare aiohttp server costs per request for the same clients: the floor under the edge's
figure.

Bounded: --viewers <= 5000, --seconds <= 120, every loop bounded in count, a watchdog over
the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import uvloop

from loadtests import pyspy
from loadtests.bench_ingest import (
    InitInfo,
    Publishers,
    frame_send_times_us,
    parse_init,
    parse_playlist,
    video_samples,
)
from loadtests.edge_viewers import Stats, generator_process
from loadtests.server import free_port, post_json, start_server, stop_server, watchdog

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark passphrase"
MAX_VIEWERS = 5000
MAX_SECONDS = 120.0
SPAWN_TIMEOUT_S = 120.0
# A generator process busier than this share of a core measures itself, not the edge.
BUSY_LIMIT = 0.9
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_LABELLED = re.compile(r'^(livecore_[a-z_]+)\{[a-z]+="([^"]*)"\} ([0-9.e+-]+)$')
# Init segments, segments and parts the origin answered 404: with the edge asking for each
# hinted part ahead of its viewers, a hint the origin does not fulfil (it guessed wrong
# whether the next part starts a new segment) is one such request, and no viewer's.
_FILE_404 = ('livecore_http_requests_total{method="GET",route="/hls/{stream}/{rendition}/{file}"'
             ',status="404"}')  # fmt: skip
# The origin's request kinds (livecore_hls_requests_total), as the clients see them.
_KINDS = {"master": "playlist", "playlist": "playlist", "blocking": "playlist",
          "part": "part", "init": "init", "segment": "segment"}  # fmt: skip


def _category(path: str) -> str:
    name = path.split("?", 1)[0].rsplit("/", 1)[-1]
    if name.endswith(".m3u8"):
        return "playlist"
    if name.startswith("part-"):
        return "part"
    return "init" if name.startswith("init-") else "segment"


def _pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def _ms(values: Sequence[float], *ps: float) -> str:
    if not values:
        return "no samples"
    shown = [f"p{p:g} {_pct(values, p) * 1000:.0f} ms" for p in ps]
    return ", ".join([*shown, f"max {max(values) * 1000:.0f} ms"])


# -- what the processes cost -------------------------------------------------------------------


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # fields 14 and 15 of stat(5)


def _waited_s(pid: int) -> float:
    """How long the process's main thread (the event loop) was ready to run but waited for a
    core, from /proc/<pid>/schedstat: on a shared machine, what other processes took."""
    try:
        with open(f"/proc/{pid}/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _tree_cpu_s(pid: int) -> float:
    """A process and its children (packaging and media workers)."""
    pids = [pid]
    with contextlib.suppress(psutil.Error):
        pids += [c.pid for c in psutil.Process(pid).children(recursive=True)]
    return sum(_proc_cpu_s(p) for p in pids)


def _counters(base: str) -> dict[tuple[str, str], float]:
    """The labelled livecore counters of a node's /metrics: (name, label value) -> value."""
    out: dict[tuple[str, str], float] = {}
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as resp:
        for line in resp.read().decode().splitlines():
            if (m := _LABELLED.match(line)) is not None:
                out[(m[1], m[2])] = float(m[3])
            elif line.startswith(_FILE_404):
                out[("file 404", "")] = float(line.rsplit(" ", 1)[1])
    return out


@dataclass
class Snapshot:
    at: float
    origin: dict[tuple[str, str], float]
    edge: dict[tuple[str, str], float]
    cpu_s: dict[str, float]
    follower_requests: Counter[str]


# -- the two clients reading frame times -------------------------------------------------------


@dataclass
class Follow:
    """One client following the source playlist, reading each frame's send time."""

    frame_lag_s: list[float] = field(default_factory=list)  # per frame: in hand - sent
    part_lag_s: list[float] = field(default_factory=list)  # per part: in hand - newest frame
    listed: dict[tuple[int, int], float] = field(default_factory=dict)  # first seen listed
    requests: Counter[str] = field(default_factory=Counter)  # while `counting`
    errors: Counter[str] = field(default_factory=Counter)
    counting: bool = False


async def _follow(base: str, slug: str, window: tuple[float, float], res: Follow) -> None:
    prefix = f"/hls/{slug}/source/"
    inits: dict[str, InitInfo] = {}
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(base, timeout=timeout) as http:

        async def get(path: str) -> tuple[int, bytes]:
            if res.counting:
                res.requests[_category(path)] += 1
            async with http.get(path) as resp:
                return resp.status, await resp.read()

        status, body = await get(prefix + "index.m3u8")
        if status != 200:
            res.errors[f"first playlist {status}"] += 1
            return
        playlist = parse_playlist(body.decode())
        done = playlist.parts[-1][0] if playlist.parts else (-1, -1)
        for _ in range(1_000_000):
            if time.time() > window[1] or playlist.ended or playlist.hint is None:
                return
            msn, index = playlist.hint
            try:
                status, body = await get(f"{prefix}index.m3u8?_HLS_msn={msn}&_HLS_part={index}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                res.errors[f"blocking reload: {type(exc).__name__}"] += 1
                await asyncio.sleep(0.5)
                continue
            now = time.time()
            if status == 503:
                continue  # nothing new within the reload timeout: ask again
            if status != 200:
                res.errors[f"blocking reload {status}"] += 1
                await asyncio.sleep(0.5)
                continue
            playlist = parse_playlist(body.decode())
            for key, _, _ in playlist.parts:
                res.listed.setdefault(key, now)
            for key, uri, map_uri in playlist.parts:
                if key <= done:
                    continue
                try:
                    if map_uri not in inits:
                        inits[map_uri] = parse_init((await get(prefix + map_uri))[1])
                    status, data = await get(prefix + uri)
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    res.errors[f"part: {type(exc).__name__}"] += 1
                    break
                arrival = time.time()
                done = key
                if status != 200:
                    res.errors[f"part {status}"] += 1
                    continue
                if not window[0] <= arrival <= window[1]:
                    continue
                sent = [us for s in video_samples(data, inits[map_uri])
                        for us in frame_send_times_us(s)]  # fmt: skip
                res.frame_lag_s += [arrival - us / 1e6 for us in sent]
                if sent:
                    res.part_lag_s.append(arrival - max(sent) / 1e6)


# -- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Nodes:
    origin: str
    edge: str
    origin_pid: int
    edge_pid: int
    redis_pid: int
    edge_port: int


@dataclass
class Outcome:
    before: Snapshot
    after: Snapshot
    via_origin: Follow
    via_edge: Follow
    stats: list[Stats]
    publisher_errors: list[str]
    load_before: tuple[float, float, float]


def _snapshot(nodes: Nodes, pubs: Publishers, follower: Follow) -> Snapshot:
    cpu = {
        "edge": _tree_cpu_s(nodes.edge_pid),
        "origin": _tree_cpu_s(nodes.origin_pid),
        "redis": _proc_cpu_s(nodes.redis_pid),
        "publisher": sum(_proc_cpu_s(p) for p in pubs.pids),
        "edge waited": _waited_s(nodes.edge_pid),
        "origin waited": _waited_s(nodes.origin_pid),
    }
    # Read on the loop, blocking it for a moment: the origin's follower sends nothing while
    # the origin's counters are read, so both counts cover the same requests.
    origin = _counters(nodes.origin)
    snapshot = Snapshot(time.time(), origin, _counters(nodes.edge), cpu, Counter(follower.requests))
    follower.counting = True
    return snapshot


async def _wait_listed(base: str, slug: str, deadline: float) -> bool:
    """Until the stream's media playlist lists a part on `base` (the edge learns of the
    stream through the directory)."""
    async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=15)) as http:
        for _ in range(100_000):
            if time.monotonic() > deadline:
                return False
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"/hls/{slug}/source/index.m3u8") as resp:
                    if resp.status == 200 and "#EXT-X-PART:" in await resp.text():
                        return True
            await asyncio.sleep(0.2)
    return False


def _generators(
    ctx: Any, args: argparse.Namespace, port: int, prefix: str
) -> list[tuple[multiprocessing.process.BaseProcess, Connection]]:
    procs = max(1, min(args.processes, args.viewers))
    per = [args.viewers // procs + (i < args.viewers % procs) for i in range(procs)]
    out = []
    for i, count in enumerate(per):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=generator_process, args=(child, port, prefix, count),
                           name=f"bench-edge-viewers-{i}", daemon=True)  # fmt: skip
        proc.start()
        out.append((proc, parent))
    return out


async def _bench(args: argparse.Namespace, nodes: Nodes, tmp: Path) -> Outcome:
    email = f"edge-{time.time_ns()}@example.com"
    body = {"email": email, "password": PASSWORD, "display_name": "Edge", "creator": True}
    token = (await asyncio.to_thread(post_json, f"{nodes.origin}/api/v1/auth/register", body))[
        "token"
    ]
    slug = f"edge-{secrets.token_hex(3)}"
    made = await asyncio.to_thread(
        post_json, f"{nodes.origin}/api/v1/streams", {"slug": slug}, token
    )
    max_s = 120 + args.ramp + args.warmup + args.seconds
    pubs = Publishers(nodes.origin, [(slug, str(made["stream_key"]))], 1, max_s)
    ctx = multiprocessing.get_context("spawn")
    gens = _generators(ctx, args, nodes.edge_port, f"/hls/{slug}/source/")
    pubs.start()
    try:
        for name, base in (("origin", nodes.origin), ("edge", nodes.edge)):
            if not await _wait_listed(base, slug, time.monotonic() + 60):
                await pubs.apoll(0)
                raise SystemExit(f"the {name} never listed a part; publisher: {pubs.errors}")
        for proc, conn in gens:
            if not await asyncio.to_thread(conn.poll, SPAWN_TIMEOUT_S):
                raise SystemExit(f"generator {proc.name} did not start")
            conn.recv()
        start_at = time.time() + 0.5
        window = (start_at + args.ramp + args.warmup, start_at + args.ramp + args.warmup
                  + args.seconds)  # fmt: skip
        for _, conn in gens:
            conn.send((start_at, args.ramp, window))
        via_origin, via_edge = Follow(), Follow()
        pairs = ((nodes.origin, via_origin), (nodes.edge, via_edge))
        follows = [asyncio.create_task(_follow(url, slug, window, res)) for url, res in pairs]
        load_before = os.getloadavg()
        await asyncio.sleep(max(0.0, window[0] - time.time()))
        before = _snapshot(nodes, pubs, via_origin)
        profiler = await _start_py_spy(args, nodes.edge_pid)
        await asyncio.sleep(max(0.0, window[1] - time.time()))
        after = _snapshot(nodes, pubs, via_origin)
        await pyspy.finish(profiler, args.py_spy, "the edge")
        via_origin.counting = False
        await asyncio.gather(*follows)
        stats = []
        for proc, conn in gens:
            if await asyncio.to_thread(conn.poll, 60):
                stats.append(conn.recv())
            else:
                print(f"!! generator {proc.name} sent no results")
        await pubs.apoll(0)
        return Outcome(before, after, via_origin, via_edge, stats, pubs.errors, load_before)
    finally:
        await asyncio.to_thread(pubs.close)
        for proc, conn in gens:
            conn.close()
            proc.join(10)
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.join(5)


async def _start_py_spy(args: argparse.Namespace, pid: int) -> asyncio.subprocess.Process | None:
    """Sample the edge with py-spy for most of the window."""
    if args.py_spy is None:
        return None
    return await pyspy.start(pid, args.py_spy, seconds=args.seconds, rate=100)


# -- the report --------------------------------------------------------------------------------


def _report(args: argparse.Namespace, out: Outcome, logs: dict[str, Path]) -> None:
    b, a = out.before, out.after
    window = a.at - b.at
    viewers = sum(s.viewers for s in out.stats)
    lead = args.ramp + args.warmup
    print(f"viewers: {viewers} on the edge in {len(out.stats)} generator processes; window"
          f" {window:.1f} s after {lead:.0f} s of joins and warm-up")  # fmt: skip

    parts = [k for k, t in out.via_origin.listed.items() if b.at <= t <= a.at]
    origin_asked: dict[str, float] = dict.fromkeys(_KINDS.values(), 0.0)
    for (name, kind), value in a.origin.items():
        if name == "livecore_hls_requests_total" and kind in _KINDS:
            origin_asked[_KINDS[kind]] += value - b.origin.get((name, kind), 0.0)
    follower = a.follower_requests - b.follower_requests
    from_edge = {k: origin_asked[k] - follower[k] for k in ("part", "playlist", "init", "segment")}
    n = max(1, len(parts))
    print(
        f"origin requests per part per edge: {len(parts)} parts made in the window; the origin"
        f" answered the edge {from_edge['part']:.0f} part requests ({from_edge['part'] / n:.2f}"
        f" per part) and {from_edge['playlist']:.0f} playlist requests"
        f" ({from_edge['playlist'] / n:.2f} per part), {from_edge['init']:.0f} init and"
        f" {from_edge['segment']:.0f} segment requests (aim: at most 1 per part; counts are"
        " ±1 at the window's edges)"
    )
    missed = a.origin.get(("file 404", ""), 0.0) - b.origin.get(("file 404", ""), 0.0)
    print(
        f"  of those, {missed:.0f} answered 404: parts hinted (EXT-X-PRELOAD-HINT) and asked"
        " ahead by the edge that the origin then made under another name (a segment cut"
        f" earlier or later than its hint guessed): {(from_edge['part'] - missed) / n:.2f}"
        " requests per part made"
    )
    edge = {o: a.edge.get(("livecore_edge_requests_total", o), 0.0)
            - b.edge.get(("livecore_edge_requests_total", o), 0.0)
            for o in ("upstream", "joined", "cached")}  # fmt: skip
    asked = sum(edge.values())
    print(
        f"  the edge's view: {asked:.0f} viewer requests for the origin's stream,"
        f" {edge['upstream']:.0f} sent upstream, {edge['joined']:.0f} joined a request in"
        f" flight, {edge['cached']:.0f} from its cache"
        f" ({edge['upstream'] / max(1.0, asked) * 100:.2f}% went to the origin)"
    )

    o, e = out.via_origin, out.via_edge
    print(f"glass to glass (frame sent -> part in a player's hands, {len(o.frame_lag_s)} and"
          f" {len(e.frame_lag_s)} frames):")  # fmt: skip
    print(f"  via the origin: {_ms(o.frame_lag_s, 50, 90, 99)}")
    print(f"  via the edge:   {_ms(e.frame_lag_s, 50, 90, 99)}")
    if o.frame_lag_s and e.frame_lag_s:
        diff = [(_pct(e.frame_lag_s, p) - _pct(o.frame_lag_s, p)) * 1000 for p in (50, 90, 99)]
        verdict = "within" if diff[0] <= 150 else "NOT within"
        print(f"  edge - origin: p50 {diff[0]:+.0f} ms, p90 {diff[1]:+.0f} ms,"
              f" p99 {diff[2]:+.0f} ms ({verdict} the 150 ms aim at p50)")  # fmt: skip
    print(f"  newest frame of each part: via the origin {_ms(o.part_lag_s, 50, 90)};"
          f" via the edge {_ms(e.part_lag_s, 50, 90)}")  # fmt: skip

    cpu = {k: (a.cpu_s[k] - b.cpu_s[k]) / window * 100 for k in a.cpu_s}
    per_100 = cpu["edge"] / max(1, viewers) * 100
    print(f"edge CPU: {cpu['edge']:.0f}% of one core for {viewers} viewers, {per_100:.1f}% of one"
          " core per 100 viewers (utime+stime, /proc)")  # fmt: skip
    requests = sum(s.requests for s in out.stats)
    if requests:
        # A viewer at the live edge makes two requests per part (its reload and the part).
        per_part = args.part_target or 0.2
        keeping_up = cpu["edge"] / 100 * window / requests * (2 / per_part) * 100 * 100
        print(f"  {cpu['edge'] / 100 * window / requests * 1e6:.0f} µs of edge CPU per viewer"
              f" request: {keeping_up:.1f}% of one core per 100 viewers keeping up with the"
              f" live edge (two requests per {per_part:g} s part)")  # fmt: skip
    print(f"  the edge's event loop waited for a core {cpu['edge waited']:.0f}% of the window,"
          f" the origin's {cpu['origin waited']:.0f}% (/proc/<pid>/schedstat: other processes"
          " had the cores)")  # fmt: skip
    print(f"  origin {cpu['origin']:.0f}% (ingest, packaging, the edge's requests), redis"
          f" {cpu['redis']:.0f}%, publisher {cpu['publisher']:.0f}%")  # fmt: skip

    fetch = [x for s in out.stats for x in s.part_fetch_s]
    reload_s = [x for s in out.stats for x in s.reload_s]
    delivery = [t - o.listed[k] for s in out.stats for k, ts in s.arrivals.items()
                if k in o.listed for t in ts]  # fmt: skip
    received = sum(len(ts) for s in out.stats for ts in s.arrivals.values())
    playing = sum(s.playing for s in out.stats)
    print(f"part delivery on the edge: {received} parts received by {playing} of {viewers} viewers"
          f" ({received / max(1, viewers) / window:.1f} per viewer per second)")  # fmt: skip
    print(f"  part requests: {_ms(fetch, 50, 90, 99)}")
    print(f"  listed on the origin -> in the viewer's hands: {_ms(delivery, 50, 90, 99)}")
    print(f"  blocking reloads (waiting for the next part): {_ms(reload_s, 50, 99)}")
    print(f"  viewer requests {requests / window:,.0f}/s")

    errors: Counter[str] = Counter()
    for s in out.stats:
        errors.update(s.errors)
    timeouts = sum(s.timeouts for s in out.stats)
    print(f"errors: viewers {sum(errors.values())}, blocking reloads answered 503 {timeouts};"
          f" follower via origin {sum(o.errors.values())}, via edge {sum(e.errors.values())};"
          f" publisher {len(out.publisher_errors)}")  # fmt: skip
    for text, count in (errors + o.errors + e.errors).most_common(6):
        print(f"    {count:6d} x {text}")
    for text in out.publisher_errors[:3]:
        print(f"    publisher: {text}")
    for name, path in logs.items():
        bad = _log_warnings(path)
        print(f"  {name} log: {sum(bad.values())} warnings/errors")
        for text, count in bad.most_common(4):
            print(f"    {count:6d} x {text}")

    saturated = []
    for i, s in enumerate(out.stats):
        lag = s.loop_lag_s
        wall = max(s.wall_s, 1e-9)
        if s.cpu_s / wall > BUSY_LIMIT:
            saturated.append(i)
        print(f"generator {i}: {s.viewers} viewers, CPU {s.cpu_s / wall * 100:.0f}% of one core"
              f" over {s.wall_s:.0f} s, waited for a core {s.waited_s / wall * 100:.0f}%;"
              f" event loop woke late by {_ms(lag, 50, 99)}")  # fmt: skip
    if saturated:
        print(f"INVALID: generator {', '.join(map(str, saturated))} above"
              f" {BUSY_LIMIT * 100:.0f}% of a core measured itself, not the edge: run with"
              " more --processes")  # fmt: skip
    load = ", ".join(f"{x:.2f}" for x in out.load_before)
    now = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} at the start of the window,"
          f" {now} at the end; the publisher, both nodes, Redis, PostgreSQL and the viewers"
          " share it with whatever else runs here: figures are noisy")  # fmt: skip


def _log_warnings(path: Path) -> Counter[str]:
    kinds: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if re.search(r"\b(WARNING|ERROR|CRITICAL|Traceback)\b", line):
                kinds[re.sub(r"\d+", "N", " ".join(line.split()[2:8]))[:120]] += 1
    return kinds


# -- main --------------------------------------------------------------------------------------


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=500, help="LL-HLS clients on the edge")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after the joins")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which viewers join")
    parser.add_argument("--processes", type=int, default=2, help="viewer generator processes")
    parser.add_argument("--part-target", type=float, help="hls.part_target_s of both nodes")
    parser.add_argument("--log-level", default="warning", help="the nodes' log level")
    parser.add_argument("--py-spy", type=Path, help="profile the edge into FILE (folded stacks)")
    parser.add_argument("--keep-dir", type=Path, help="copy the nodes' logs here")
    args = parser.parse_args()
    if not 1 <= args.viewers <= MAX_VIEWERS:
        parser.error(f"--viewers must be between 1 and {MAX_VIEWERS}")
    if not (0 < args.seconds <= MAX_SECONDS and 0 <= args.warmup <= 60 and 0 <= args.ramp <= 60):
        parser.error(f"--seconds in (0, {MAX_SECONDS:.0f}], --warmup and --ramp in [0, 60]")
    if not 1 <= args.processes <= 8:
        parser.error("--processes must be between 1 and 8")
    budget = int(600 + args.ramp + args.warmup + args.seconds)
    signal.signal(signal.SIGTERM, _stop)  # a SIGTERM still stops what this run started

    sys.path.insert(0, str(ROOT))
    from livecore.store.embedded import EmbeddedPostgres
    from tests.support.services import RedisProcess

    with watchdog(budget), tempfile.TemporaryDirectory(prefix="livecore-edge-") as tmp_name:
        tmp = Path(tmp_name)
        pg = EmbeddedPostgres(tmp / "postgres")
        redis = RedisProcess(tmp / "redis")
        servers = []
        logs = {"origin": tmp / "origin.log", "edge": tmp / "edge.log"}
        outcome = None
        try:
            dsn = pg.start()
            redis.start()
            env = {
                "LIVECORE_DATABASE_URL": dsn,
                "LIVECORE_REDIS_URL": redis.url,
                "LIVECORE_SECRET_KEY": secrets.token_urlsafe(48),
                "LIVECORE_LOG_LEVEL": args.log_level,
                "LIVECORE_SFU__ICE_HOST_ADDRESSES": "127.0.0.1",
                "LIVECORE_HLS__RENDITIONS": "source",
            }
            if args.part_target:
                env["LIVECORE_HLS__PART_TARGET_S"] = str(args.part_target)
            ports = {}
            for name in ("origin", "edge"):
                port = ports[name] = free_port()
                node = {"LIVECORE_NODE__ID": name,
                        "LIVECORE_NODE__INTERNAL_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
                servers.append(start_server(port, tmp / name, logs[name], env={**env, **node}))
            assert redis.pid is not None
            nodes = Nodes(
                f"http://127.0.0.1:{ports['origin']}", f"http://127.0.0.1:{ports['edge']}",
                servers[0].pid, servers[1].pid, redis.pid, ports["edge"],
            )  # fmt: skip
            shown = env | {"LIVECORE_DATABASE_URL": "...", "LIVECORE_SECRET_KEY": "..."}
            print(f"cores: {os.cpu_count()}; origin {nodes.origin}, edge {nodes.edge}, sharing"
                  f" Redis and PostgreSQL; settings {shown}")  # fmt: skip
            outcome = uvloop.run(_bench(args, nodes, tmp))
        finally:
            for proc in servers:
                stop_server(proc)
            redis.stop()
            pg.stop()
            if args.keep_dir is not None:
                args.keep_dir.mkdir(parents=True, exist_ok=True)
                for path in logs.values():
                    if path.exists():
                        shutil.copy(path, args.keep_dir / path.name)
        _report(args, outcome, logs)


if __name__ == "__main__":
    main()
