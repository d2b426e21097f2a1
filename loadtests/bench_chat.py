"""Chat premiere spike: N WebSocket viewers join one room, then P senders chat into it.

    .venv/bin/python -m loadtests.bench_chat [--viewers 10000] [--join-rate 1000]
        [--senders 20] [--rate 100,200] [--seconds 20] [--nodes 1|2] [--redis]
        [--processes P] [--generators 2] [--profile-dir DIR] [--keep-dir DIR]

It starts everything it uses on 127.0.0.1 in a temporary directory and stops it afterwards,
each process by its PID: one embedded PostgreSQL (started here with livecore's
EmbeddedPostgres and handed to every node as LIVECORE_DATABASE_URL, so two nodes share
one database), with --redis a redis-server on a free port (LIVECORE_REDIS_URL for every
node), and --nodes `livecore serve` processes on free ports sharing one secret key (with
--processes P, one `livecore serve --processes P`: P processes behind one port, their bus
the private redis-server it starts, or --redis's). The
server's limits are raised through LIVECORE_CHAT__* (all viewers come from one address;
the senders' per-user rate limit must not be what is measured) and its open-file limit is
raised to the hard limit before exec.

Then: a creator, a public stream, P sender accounts and one "victim" account are made over
the HTTP API. N viewers (anonymous) join the room at --join-rate, spread over --generators
generator processes (spawn, uvloop). A viewer is a minimal WebSocket client on an
asyncio Protocol (handshake, unmasked server frames, pong, close): aiohttp's client costs
several times more CPU per frame, and on a small machine the generator must not be what
is measured. A join is complete when `hello` arrives.

Each phase (--rate, default 100 then 200 msg/s, for --seconds) the P senders (aiohttp,
authenticated with Bearer on the upgrade, spread over the nodes) send `bench SEQ SEND_NS`
lines round-robin at the total rate; the generator parses each distinct frame once (the
server encodes a frame once per slice of the room's sockets, so a worker's viewers mostly
receive identical bytes). Every --timed-every'th viewer (default 10th; the server writes a room's
sockets in no particular order, so they are spread over each tick) reads as data arrives and
takes the receive time of each frame: delivery latency = receive - send for every chat event
at those viewers. The others stop reading as data arrives and are read in batches every
0.25 s, and counted: every delivery to every viewer is checked. On one small machine a
wake-up and a read per frame for each of 10,000 sockets would make the generator, not the
server, what is measured (and on a real network, a server's send wakes nobody on its own
machine). Once a second the creator
times out the victim for 1 s over the HTTP API: `user_timed_out` is an essential event
(never thinned in a storm), so its deliveries stand in for tips, which cannot be published
from a client. A message that no viewer of a node received was thinned by that node's
storm mode (thinning is per room, as lines arrive, the same for every socket of the node); a
message that some viewers of the node received and others did not was lost for those.

Bounded: --viewers <= the open-file limit, --seconds <= 120, a drain of at most 30 s after
each phase, a watchdog over the whole run.

With --processes P the kernel spreads the viewers over the processes; server CPU, loop lag and
room frames are reported per process (its metrics read at its own address), while
"thinned" still means "no viewer of the port got it": a line thinned by one process's storm
mode would count as lost (at 100-200 msg/s storm mode stays off).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
from array import array
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import aiohttp
import numpy as np
import numpy.typing as npt
import psutil
import uvloop

from loadtests import pyspy
from loadtests.server import (
    free_port,
    free_ports,
    post_json,
    scrape,
    serve_processes,
    stalls,
    start_server,
    stop_server,
    watchdog,
)
from loadtests.wsframes import server_frames, upgrade_answer
from tests.support.services import RedisProcess

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark passphrase"
BULK_SLICE = 250  # bulk viewers read between two looks at the generator's event loop
BULK_READ_S = 0.25  # how often batch-read viewers are read
HIST_MS = 120_001  # delivery-latency histogram: 1 ms buckets up to 120 s (the last: beyond)
JOIN_TIMEOUT_S = 30.0
DRAIN_MAX_S = 30.0
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="

I64 = npt.NDArray[np.int64]


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _quantile_ms(values_ns: list[int], q: float) -> float:
    if not values_ns:
        return float("nan")
    ordered = sorted(values_ns)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


# -- the viewers (generator processes) ---------------------------------------------------------


class _Frame:
    """One distinct frame a worker's viewers received, parsed once, with its receive times."""

    __slots__ = ("bulk", "essential_ts", "hello", "recv", "sent_ns", "seqs")

    def __init__(self, payload: bytes, victim: int, nodes: int) -> None:
        self.hello = False
        seqs: list[int] = []
        sent: list[int] = []
        self.essential_ts: list[float] = []
        try:
            events = json.loads(payload)
        except ValueError:
            events = []
        for event in events if isinstance(events, list) else []:
            kind = event.get("type")
            if kind == "chat":
                text = event.get("text", "")
                if text.startswith("bench "):
                    _, seq, sent_ns = text.split(" ", 2)
                    seqs.append(int(seq))
                    sent.append(int(sent_ns))
            elif kind == "hello":
                self.hello = True
            elif kind == "user_timed_out" and event.get("user_id") == victim:
                self.essential_ts.append(float(event["ts"]))
        self.seqs: I64 = np.array(seqs, dtype=np.int64)
        self.sent_ns: I64 = np.array(sent, dtype=np.int64)
        # Receive times (time.time_ns) per node at timed viewers; only kept for frames that
        # matter. Bulk viewers (read in batches, so their receive times mean nothing) count.
        self.recv: list[array[int]] = [array("q") for _ in range(nodes)]
        self.bulk = [0] * nodes

    @property
    def interesting(self) -> bool:
        return bool(self.seqs.size or self.essential_ts)


class _Viewer(asyncio.Protocol):
    """A read-only WebSocket client: the handshake, then server frames (never masked)."""

    def __init__(self, worker: _Worker, node: int, done: asyncio.Future[str]) -> None:
        self.worker = worker
        self.node = node
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.joined = False
        self.t0 = time.time_ns()
        self.closing = False
        self.timed = True  # read as data arrives; False: read in batches by the worker
        self.fd = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.worker.requests[self.node])

    def _finish(self, result: str) -> None:
        if not self.done.done():
            self.done.set_result(result)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish("closed before hello")
        if self.joined and not self.closing:
            self.worker.dropped[self.node] += 1
            self.worker.viewers.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.upgraded:
            answer = upgrade_answer(data)
            if answer is None:
                self.buf = data
                return
            if answer.status != 101:
                self._finish(f"HTTP {answer.status}")
                self.closing = True
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            data = answer.rest
        frames, pos = server_frames(data)
        for opcode, payload in frames:
            if opcode == 1:
                self.worker.on_text(self, payload)
            elif opcode == 9:  # ping: answer with a (zero-)masked pong
                self._write(0x8A, payload)
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.worker.close_codes[code] += 1
                self._write(0x88, payload[:2])
                self.closing = not self.joined
                assert self.transport is not None
                self.transport.close()
                return
        if pos < len(data):
            self.buf = data[pos:]

    def _write(self, b0: int, payload: bytes) -> None:
        assert self.transport is not None and len(payload) < 126
        self.transport.write(bytes((b0, 0x80 | len(payload))) + b"\0\0\0\0" + payload)


class _Worker:
    """One generator process: its share of the viewers, answering the orchestrator's pipe."""

    def __init__(
        self,
        conn: Connection,
        index: int,
        processes: int,
        nodes: list[int],
        slug: str,
        victim: int,
        timed_every: int,
    ) -> None:
        self.conn = conn
        self.index = index
        self.timed_every = timed_every
        self.bulk: list[_Viewer] = []
        self.joined_count = 0
        self.processes = processes
        self.ports = nodes
        self.victim = victim
        self.requests = [
            (
                f"GET /ws/{slug} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
            for port in nodes
        ]
        self.viewers: set[_Viewer] = set()
        self.frames: dict[bytes, _Frame] = {}
        self.frames_in = 0
        self.dropped = [0] * len(nodes)
        self.close_codes: Counter[int] = Counter()
        self.join_ns: list[int] = []

    def on_text(self, viewer: _Viewer, payload: bytes) -> None:
        frame = self.frames.get(payload)
        if frame is None:
            frame = self.frames[payload] = _Frame(payload, self.victim, len(self.ports))
        now = time.time_ns()
        self.frames_in += 1
        if frame.hello and not viewer.joined:
            viewer.joined = True
            self.join_ns.append(now - viewer.t0)
            self.viewers.add(viewer)
            viewer._finish("ok")
            self._sample(viewer)
        if frame.interesting:
            if viewer.timed:
                frame.recv[viewer.node].append(now)
            else:
                frame.bulk[viewer.node] += 1

    def _sample(self, viewer: _Viewer) -> None:
        """Every `timed_every`-th joined viewer is timed; the others stop reading as data
        arrives and are read in batches (`_read_bulk`): on one small machine, a wake-up and
        a read per frame for 10,000 sockets would make the generator what is measured."""
        self.joined_count += 1
        if self.joined_count % self.timed_every == 0 or viewer.transport is None:
            return
        sock = viewer.transport.get_extra_info("socket")
        if sock is None:
            return
        viewer.timed = False
        viewer.fd = sock.fileno()
        viewer.transport.pause_reading()
        self.bulk.append(viewer)

    async def _read_bulk(self) -> None:
        while True:
            await asyncio.sleep(BULK_READ_S)
            for i, viewer in enumerate(list(self.bulk)):
                if i % BULK_SLICE == 0:
                    # A pass over thousands of sockets takes tens of ms: the timed viewers'
                    # data is read between slices, so their receive times stay true.
                    await asyncio.sleep(0)
                if viewer.closing or viewer.transport is None or viewer.transport.is_closing():
                    continue
                for _ in range(64):  # bounded: a socket never has more than this waiting
                    try:
                        data = os.read(viewer.fd, 1 << 18)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        viewer.transport.abort()
                        break
                    if not data:
                        viewer.transport.abort()
                        break
                    viewer.data_received(data)

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        bulk = asyncio.create_task(self._read_bulk())
        while True:
            # A thread waits on the pipe: a reader on its descriptor would make it
            # non-blocking, and then large answers fail to send.
            command = await loop.run_in_executor(None, self.conn.recv)
            if command[0] == "join":
                self.conn.send(await self.join(*command[1:]))
            elif command[0] == "phase":
                self.frames.clear()
                self.frames_in = 0
                self.dropped = [0] * len(self.ports)
                self.close_codes.clear()
                self.conn.send((self._connected(), time.process_time()))
            elif command[0] == "poll":
                delivered = sum(
                    (len(f.recv[n]) + f.bulk[n]) * f.seqs.size
                    for f in self.frames.values()
                    for n in range(len(self.ports))
                )
                self.conn.send((delivered, time.process_time()))
            elif command[0] == "collect":
                self.conn.send(self.collect(*command[1:]))
            elif command[0] == "quit":
                bulk.cancel()
                for viewer in list(self.viewers):
                    viewer.closing = True
                    if viewer.transport is not None:
                        viewer.transport.abort()
                self.conn.send("bye")
                return

    def _connected(self) -> list[int]:
        per_node = [0] * len(self.ports)
        for viewer in self.viewers:
            per_node[viewer.node] += 1
        return per_node

    async def join(self, count: int, rate: float, start_at: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        results: Counter[str] = Counter()

        async def one(node: int) -> None:
            done: asyncio.Future[str] = loop.create_future()
            viewer = _Viewer(self, node, done)
            try:
                async with asyncio.timeout(JOIN_TIMEOUT_S):
                    await loop.create_connection(lambda: viewer, "127.0.0.1", self.ports[node])
                    results[await done] += 1
            except TimeoutError:
                results["timeout"] += 1
                viewer.closing = True
                if viewer.transport is not None:
                    viewer.transport.abort()
            except OSError as exc:
                results[f"connect error: {exc.strerror or exc}"] += 1

        await asyncio.sleep(max(0.0, start_at - time.time()))
        t0 = loop.time()
        tasks = []
        for j in range(count):
            delay = t0 + j / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            i = self.index + j * self.processes  # the viewer's global number
            tasks.append(asyncio.create_task(one(i % len(self.ports))))
        launched = loop.time() - t0
        await asyncio.gather(*tasks)
        return {
            "results": dict(results),
            "join_ns": self.join_ns,
            "launch_s": launched,
            "close_codes": dict(self.close_codes),
            "connected": self._connected(),
            "cpu": time.process_time(),
        }

    def collect(self, base: int, count: int) -> dict[str, Any]:
        nodes = len(self.ports)
        counts: I64 = np.zeros((nodes, count), dtype=np.int64)
        hist: I64 = np.zeros(HIST_MS, dtype=np.int64)
        max_ns = 0
        late = 0
        essential = [0] * nodes
        essential_max_ns = 0
        for frame in self.frames.values():
            if not frame.interesting:
                continue
            idx = frame.seqs - base
            ok = (idx >= 0) & (idx < count)
            sent = frame.sent_ns[ok]
            for node in range(nodes):
                bulk = frame.bulk[node]
                if not frame.recv[node] and not bulk:
                    continue
                recv: I64 = np.frombuffer(frame.recv[node], dtype=np.int64)
                late += int((~ok).sum()) * (recv.size + bulk)
                essential[node] += len(frame.essential_ts) * (recv.size + bulk)
                if frame.essential_ts and recv.size:
                    lag = int(recv.max()) - int(min(frame.essential_ts) * 1e9)
                    essential_max_ns = max(essential_max_ns, lag)
                if not sent.size:
                    continue
                counts[node, idx[ok]] += recv.size + bulk
                if not recv.size:
                    continue
                lat_ns = recv[:, None] - sent[None, :]
                max_ns = max(max_ns, int(lat_ns.max()))
                buckets = np.clip(lat_ns // 1_000_000, 0, HIST_MS - 1).ravel()
                hist += np.bincount(buckets, minlength=HIST_MS)
        return {
            "counts": counts,
            "hist": hist,
            "max_ns": max_ns,
            "late": late,
            "essential": essential,
            "essential_max_ns": essential_max_ns,
            "frames": self.frames_in,
            "connected": self._connected(),
            "dropped": self.dropped,
            "close_codes": dict(self.close_codes),
            "cpu": time.process_time(),
        }


def _viewer_worker(
    conn: Connection,
    index: int,
    processes: int,
    ports: list[int],
    slug: str,
    victim: int,
    timed_every: int,
) -> None:
    _raise_nofile()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops us
    worker = _Worker(conn, index, processes, ports, slug, victim, timed_every)
    uvloop.run(worker.serve())


# -- servers -----------------------------------------------------------------------------------


def _server_preexec() -> None:
    _raise_nofile()


def _register(base: str, name: str, creator: bool = False) -> dict[str, Any]:
    email = f"{name}-{time.time_ns()}-{secrets.token_hex(3)}@example.com"
    body = {"email": email, "password": PASSWORD, "display_name": name, "creator": creator}
    return post_json(f"{base}/api/v1/auth/register", body)


CHAT_COUNTERS = (
    "livecore_chat_batches_total", "livecore_chat_frame_deliveries_total",
    "livecore_chat_slow_consumers_total", "livecore_chat_refused_total",
    "livecore_events_bus_publish_failures_total",
)  # fmt: skip


def _cpu(procs: list[psutil.Process]) -> list[float]:
    return [sum(p.cpu_times()[:2]) for p in procs]


# -- the orchestrator --------------------------------------------------------------------------


@dataclass
class _Sender:
    ws: aiohttp.ClientWebSocketResponse
    node: int
    reader: asyncio.Task[None] | None = None


@dataclass
class _Acks:
    ids: dict[int, int] = field(default_factory=dict)  # seq -> event id
    ack_ns: list[int] = field(default_factory=list)
    sent_at: dict[int, int] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    sender_closes: int = 0


@dataclass
class _Run:
    args: argparse.Namespace
    bases: list[str]
    slug: str
    creator_token: str
    victim: int
    sender_tokens: list[str]
    conns: list[Connection]
    servers: list[psutil.Process]  # the processes serving: one per node, or per --processes
    metric_bases: list[str]  # where each one's /metrics is read
    profile_dir: Path | None


async def _ask(conns: list[Connection], command: tuple[Any, ...]) -> list[Any]:
    for conn in conns:
        conn.send(command)
    return list(await asyncio.gather(*(asyncio.to_thread(c.recv) for c in conns)))


async def _read_sender(sender: _Sender, acks: _Acks) -> None:
    async for msg in sender.ws:
        if msg.type != aiohttp.WSMsgType.TEXT:
            continue
        now = time.time_ns()
        for event in json.loads(msg.data):
            kind = event.get("type")
            nonce = event.get("nonce")
            if kind == "ack" and "id" in event and nonce:
                seq = int(nonce)
                acks.ids[seq] = int(event["id"])
                acks.ack_ns.append(now - acks.sent_at.get(seq, now))
            elif kind == "error":
                acks.errors[str(event.get("code"))] += 1
    acks.sender_closes += 1


async def _send(senders: list[_Sender], acks: _Acks, rate: float, base: int, count: int) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for k in range(count):
        delay = t0 + k / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        seq = base + k
        now = time.time_ns()
        acks.sent_at[seq] = now
        text = f"bench {seq} {now}"
        with contextlib.suppress(ConnectionError, RuntimeError):
            await senders[k % len(senders)].ws.send_str(
                json.dumps({"type": "chat", "text": text, "nonce": str(seq)})
            )


async def _moderate(
    run: _Run, session: aiohttp.ClientSession, seconds: float
) -> list[tuple[int, float]]:
    """Time the victim out for 1 s, once a second (not waiting for the previous answer),
    alternating nodes: essential events. Returns (status, seconds) per request."""
    loop = asyncio.get_running_loop()
    headers = {"Authorization": f"Bearer {run.creator_token}"}
    body = {"user_id": run.victim, "seconds": 1, "reason": "bench"}

    async def one(base: str) -> tuple[int, float]:
        started = loop.time()
        url = f"{base}/api/v1/streams/{run.slug}/chat/timeouts"
        try:
            async with session.post(url, json=body, headers=headers) as resp:
                return resp.status, loop.time() - started
        except (aiohttp.ClientError, TimeoutError):
            return 0, loop.time() - started

    t0 = loop.time()
    tasks = []
    for i in range(max(1, int(seconds))):
        await asyncio.sleep(max(0.0, t0 + i - loop.time()))
        tasks.append(asyncio.create_task(one(run.bases[i % len(run.bases)])))
    return list(await asyncio.gather(*tasks))


async def _profile(run: _Run, label: str, delay: float) -> Path | None:
    if run.profile_dir is None:
        return None
    await asyncio.sleep(delay)
    out = run.profile_dir / f"pyspy-{label}.txt"
    # 5 s of samples (pyspy.start leaves the last 2 s of the window out).
    await pyspy.wait(await pyspy.start(run.servers[0].pid, out, seconds=7, rate=100))
    return out if out.exists() else None


def _profile_summary(path: Path, top: int = 12) -> list[str]:
    """Self time by leaf frame on the event-loop thread (others are idle pool threads)."""
    leaves: Counter[str] = Counter()
    total = other = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        if "Runner.run (asyncio/runners.py" not in stack:
            other += int(count)
            continue
        leaf = stack.split(";")[-1]
        if leaf.startswith("Runner.run "):
            leaf = "(in uvloop's C code: waiting in epoll, libuv callbacks)"
        leaves[leaf] += int(count)
        total += int(count)
    lines = [f"{n / max(total, 1) * 100:5.1f}%  {leaf}" for leaf, n in leaves.most_common(top)]
    return [*lines, f"(samples: {total} on the loop thread, {other} in other threads)"]


def _listen_drops() -> int:
    """TcpExt ListenOverflows + ListenDrops of this network namespace (SYNs not accepted)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        rows = [r.split() for r in Path("/proc/net/netstat").read_text().splitlines()]
        for head, values in zip(rows[::2], rows[1::2], strict=False):
            if head[0] == "TcpExt:":
                table = dict(zip(head[1:], values[1:], strict=True))
                return int(table["ListenOverflows"]) + int(table["ListenDrops"])
    return 0


def _percentile_ms(hist: I64, q: float) -> float:
    total = int(hist.sum())
    if total == 0:
        return float("nan")
    return float(np.searchsorted(np.cumsum(hist), q * total))


async def _phases(run: _Run) -> None:
    args = run.args
    nodes = len(run.bases)
    acks = _Acks()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        senders: list[_Sender] = []
        for j, token in enumerate(run.sender_tokens):
            node = j % nodes
            ws = await session.ws_connect(
                f"{run.bases[node]}/ws/{run.slug}", headers={"Authorization": f"Bearer {token}"}
            )
            sender = _Sender(ws, node)
            sender.reader = asyncio.create_task(_read_sender(sender, acks))
            senders.append(sender)
        await asyncio.sleep(1.0)
        seq_next = 0
        for rate in args.rates:
            count = int(rate * args.seconds)
            base, seq_next = seq_next, seq_next + count
            acks.errors.clear()
            acks.ack_ns.clear()
            ready = await _ask(run.conns, ("phase",))
            viewers = [sum(r[0][n] for r in ready) for n in range(nodes)]
            gen0 = sum(r[1] for r in ready) + time.process_time()
            metrics0 = [scrape(b, CHAT_COUNTERS) for b in run.metric_bases]
            cpu0 = _cpu(run.servers)
            t0 = time.monotonic()
            sending = asyncio.gather(
                _send(senders, acks, rate, base, count),
                _moderate(run, session, args.seconds),
                _profile(run, f"{rate:g}", args.seconds / 2 - 2.5),
            )
            _, statuses, profile = await sending
            window = time.monotonic() - t0
            cpu1 = _cpu(run.servers)
            metrics_w = [scrape(b, CHAT_COUNTERS) for b in run.metric_bases]
            polled = await _ask(run.conns, ("poll",))
            gen1 = sum(p[1] for p in polled) + time.process_time()
            delivered = sum(p[0] for p in polled)
            # Drain: until deliveries stop growing (and every line is acked), bounded.
            drain_t0 = time.monotonic()
            steady = 0
            while time.monotonic() - drain_t0 < DRAIN_MAX_S and steady < 2:
                await asyncio.sleep(1.0)
                now = sum(p[0] for p in await _ask(run.conns, ("poll",)))
                acked = sum(1 for s in range(base, base + count) if s in acks.ids)
                pending = count - acked - sum(acks.errors.values())
                steady = steady + 1 if now == delivered and pending <= 0 else 0
                delivered = now
            drain = time.monotonic() - drain_t0
            metrics1 = [scrape(b, CHAT_COUNTERS) for b in run.metric_bases]
            got = await _ask(run.conns, ("collect", base, count))
            _report_phase(
                run, rate, count, base, acks, viewers, window, drain, cpu0, cpu1, gen1 - gen0,
                (metrics0, metrics_w, metrics1), got, statuses, profile,
            )  # fmt: skip
        for sender in senders:
            await sender.ws.close()
            if sender.reader is not None:
                await asyncio.gather(sender.reader, return_exceptions=True)


def _report_phase(
    run: _Run,
    rate: float,
    count: int,
    base: int,
    acks: _Acks,
    viewers: list[int],
    window: float,
    drain: float,
    cpu0: list[float],
    cpu1: list[float],
    gen_cpu: float,
    metrics: tuple[list[dict[str, float]], list[dict[str, float]], list[dict[str, float]]],
    got: list[dict[str, Any]],
    statuses: list[tuple[int, float]],
    profile: Path | None,
) -> None:
    nodes = len(run.bases)
    counts: I64 = sum((g["counts"] for g in got), np.zeros((nodes, count), dtype=np.int64))
    hist: I64 = sum((g["hist"] for g in got), np.zeros(HIST_MS, dtype=np.int64))
    acked = np.array([s - base for s in range(base, base + count) if s in acks.ids], dtype=int)
    n_viewers = sum(viewers)
    expected = len(acked) * n_viewers
    delivered = int(counts[:, acked].sum()) if acked.size else 0
    thinned_msgs = [int((counts[n, acked] == 0).sum()) for n in range(nodes)]
    thinned = sum(thinned_msgs[n] * viewers[n] for n in range(nodes))
    lost = expected - delivered - thinned
    dropped = [sum(g["dropped"][n] for g in got) for n in range(nodes)]
    closes: Counter[int] = Counter()
    for g in got:
        closes.update(g["close_codes"])
    max_ms = max(g["max_ns"] for g in got) / 1e6
    late = sum(g["late"] for g in got)
    frames = sum(g["frames"] for g in got)
    timeouts_ok = sum(1 for s, _ in statuses if s == 201)
    slowest = max((t for _, t in statuses), default=0.0)
    essential = sum(sum(g["essential"]) for g in got)
    essential_max = max(g["essential_max_ns"] for g in got) / 1e6
    senders = len(run.sender_tokens)
    print(f"\n== phase: {rate:g} msg/s for {run.args.seconds:g} s, {senders} senders,"
          f" {n_viewers} viewers on {nodes} node(s), {os.cpu_count()} cores ==")  # fmt: skip
    refused = dict(acks.errors)
    print(f"chat lines: {count} sent, {len(acked)} acked, refused/errors: {refused or 'none'};"
          f" ack p50 {_quantile_ms(acks.ack_ns, 0.5):.1f} ms,"
          f" p99 {_quantile_ms(acks.ack_ns, 0.99):.1f} ms")  # fmt: skip
    print(f"deliveries: {delivered:,} of {expected:,} expected "
          f"({delivered / window:,.0f}/s over the {window:.1f} s window; drain {drain:.1f} s);"
          f" frames received: {frames / window:,.0f}/s")  # fmt: skip
    timed = (
        "every viewer"
        if run.args.timed_every == 1
        else (f"every {run.args.timed_every}th viewer, the others read in batches and counted")
    )
    print(f"delivery latency ({timed}): p50 {_percentile_ms(hist, 0.5):.0f} ms, "
          f"p99 {_percentile_ms(hist, 0.99):.0f} ms, max {max_ms:.0f} ms")  # fmt: skip
    print(f"thinned (storm sampling; no viewer of the node got the line): "
          f"{sum(thinned_msgs)} lines = {thinned:,} deliveries; "
          f"lost: {lost:,} deliveries ({lost / max(expected, 1) * 100:.3f}%)")  # fmt: skip
    if late:
        print(f"deliveries of earlier phases' lines seen in this phase: {late:,}")
    print(f"essential events (user_timed_out, {timeouts_ok}/{len(statuses)} timeouts issued):"
          f" delivered {essential:,} of {timeouts_ok * n_viewers:,} expected,"
          f" max latency {essential_max:.0f} ms; slowest timeout request"
          f" {slowest * 1000:.0f} ms")  # fmt: skip
    print(f"viewers dropped during the phase: {sum(dropped)}; close codes: {dict(closes) or 'none'}"
          f"; sender sockets closed: {acks.sender_closes}")  # fmt: skip
    for n, label in enumerate(_labels(run)):
        m0, mw, m1 = metrics[0][n], metrics[1][n], metrics[2][n]
        batches = mw["livecore_chat_batches_total"] - m0["livecore_chat_batches_total"]
        slow = m1["livecore_chat_slow_consumers_total"] - m0["livecore_chat_slow_consumers_total"]
        failures = "livecore_events_bus_publish_failures_total"
        fails = m1[failures] - m0[failures]
        print(f"{label}: server CPU {(cpu1[n] - cpu0[n]) / window * 100:.0f}% of one core;"
              f" room frames built {batches / window:.1f}/s (one per slice of sockets"
              f" per sweep);"
              f" slow consumers closed {slow:.0f}; bus publish failures {fails:.0f}")  # fmt: skip
        print(f"{label}: {stalls(m0, mw)}")
    print(f"load-generator CPU: {gen_cpu / window * 100:.0f}% of one core (all its processes)")
    if profile is not None:
        print(f"py-spy of node 0 (5 s mid-window, by leaf frame; {profile}):")
        for line in _profile_summary(profile):
            print("   ", line)


def _join(run: _Run, viewers: int, join_rate: float, server_rss0: list[int]) -> int:
    processes = len(run.conns)
    start_at = time.time() + 1.0
    cpu0 = _cpu(run.servers)
    drops0 = _listen_drops()
    t0 = time.monotonic()
    for w, conn in enumerate(run.conns):
        share = len(range(w, viewers, processes))
        conn.send(("join", share, join_rate / processes, start_at))
    results = [conn.recv() for conn in run.conns]
    elapsed = time.monotonic() - t0 - 1.0
    cpu1 = _cpu(run.servers)
    drops = _listen_drops() - drops0
    outcomes: Counter[str] = Counter()
    join_ns: list[int] = []
    for r in results:
        outcomes.update(r["results"])
        join_ns.extend(r["join_ns"])
    ok = outcomes.pop("ok", 0)
    http503 = outcomes.get("HTTP 503", 0)
    launch = max(r["launch_s"] for r in results)
    print(f"\n== join: {viewers} viewers at {join_rate:g}/s over {processes} generator processes,"
          f" {len(run.bases)} node(s), {os.cpu_count()} cores ==")  # fmt: skip
    failures = dict(outcomes) or "none"
    print(f"joined: {ok} of {viewers} (attempts launched over {launch:.1f} s, all settled"
          f" in {elapsed:.1f} s); failures: {failures}; HTTP 503: {http503}")  # fmt: skip
    print(f"join latency (connect to hello): p50 {_quantile_ms(join_ns, 0.5):.1f} ms,"
          f" p99 {_quantile_ms(join_ns, 0.99):.1f} ms,"
          f" max {_quantile_ms(join_ns, 1.0):.1f} ms; kernel listen-queue overflows/drops"
          f" (SYNs retried after ~1 s): {drops}")  # fmt: skip
    for n, label in enumerate(_labels(run)):
        print(f"{label}: server CPU during joins {(cpu1[n] - cpu0[n]) / elapsed * 100:.0f}%"
              " of one core")  # fmt: skip
    print(f"joins completed per second: {ok / max(elapsed, 1e-9):.0f}")
    time.sleep(3.0)  # let the server settle before measuring its memory
    connected = [sum(r["connected"][n] for r in results) for n in range(len(run.bases))]
    if len(run.servers) != len(run.bases):  # --processes: one port, its viewers over them all
        connected = [sum(connected) // len(run.servers)] * len(run.servers)
    for n, (label, proc) in enumerate(zip(_labels(run), run.servers, strict=True)):
        rss = proc.memory_info().rss
        per = (rss - server_rss0[n]) / max(connected[n], 1)
        print(f"{label}: RSS {server_rss0[n] / 2**20:.0f} MiB before joins, "
              f"{rss / 2**20:.0f} MiB with about {connected[n]} viewers: {per / 1024:.1f} KiB"
              " per connection")  # fmt: skip
    return ok


def _labels(run: _Run) -> list[str]:
    if len(run.servers) == len(run.bases):
        return [f"node {n}" for n in range(len(run.servers))]
    return [f"process {n + 1}" for n in range(len(run.servers))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=10_000)
    parser.add_argument("--join-rate", type=float, default=1000.0, help="joins per second")
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--rate", default="100,200", help="msg/s in total; a comma-separated"
                        " list runs one phase per rate")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--nodes", type=int, choices=(1, 2), default=1)
    parser.add_argument("--redis", action="store_true", help="Redis bus (implied by --nodes 2)")
    parser.add_argument(
        "--processes", type=int, default=1, help="livecore serve --processes P (with --nodes 1)"
    )
    parser.add_argument("--generators", type=int, default=2, help="viewer generator processes")
    parser.add_argument(
        "--timed-every", type=int, default=10,
        help="time every Nth viewer's deliveries; read the others in batches (1: time all)",
    )  # fmt: skip
    parser.add_argument("--log-level", default="info", help="server log level")
    parser.add_argument("--profile-dir", type=Path, help="py-spy node 0 for 5 s in each phase")
    parser.add_argument("--keep-dir", type=Path, help="copy the server logs here")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rate.split(",") if r.strip()]
    nofile = _raise_nofile()
    if not 1 <= args.viewers <= nofile - 200:
        parser.error(f"--viewers must be between 1 and {nofile - 200} (open-file limit {nofile})")
    if not (0 < args.seconds <= 120 and all(0 < r <= 5000 for r in args.rates) and args.rates):
        parser.error("--seconds must be in (0, 120] and every --rate in (0, 5000]")
    if not (1 <= args.senders <= 500 and 1 <= args.generators <= 16 and args.join_rate > 0
            and args.timed_every >= 1 and 1 <= args.processes <= 8):  # fmt: skip
        parser.error("--senders in [1, 500], --generators in [1, 16], --processes in [1, 8],"
                     " --join-rate > 0")  # fmt: skip
    if args.processes > 1 and args.nodes > 1:
        parser.error("--processes is for one node (--nodes 1)")
    use_redis = args.redis or args.nodes > 1
    budget = int(300 + 2 * args.viewers / args.join_rate + len(args.rates) * (args.seconds + 120))
    if args.profile_dir is not None:
        args.profile_dir.mkdir(parents=True, exist_ok=True)

    # The embedded database's module logs through `logging`; this process stays quiet.
    sys.path.insert(0, str(ROOT))
    from livecore.store.embedded import EmbeddedPostgres

    with watchdog(budget), tempfile.TemporaryDirectory(prefix="livecore-chat-") as tmp_name:
        tmp = Path(tmp_name)
        pg = EmbeddedPostgres(tmp / "postgres")
        redis: RedisProcess | None = None
        servers: list[subprocess.Popen[bytes]] = []
        logs: list[Path] = []
        workers: list[multiprocessing.process.BaseProcess] = []
        conns: list[Connection] = []
        try:
            dsn = pg.start()
            env = {
                "LIVECORE_DATABASE_URL": dsn,
                "LIVECORE_SECRET_KEY": secrets.token_urlsafe(48),
                "LIVECORE_CHAT__MAX_CONNECTIONS": str(max(20_000, args.viewers + 1000)),
                "LIVECORE_CHAT__MAX_CONNECTIONS_PER_IP": str(args.viewers + args.senders + 100),
                # The generator's rate, not the per-user limits, is what is measured.
                "LIVECORE_CHAT__RATE_BURST": "1000",
                "LIVECORE_CHAT__RATE_PER_S": "1000",
                "LIVECORE_CHAT__INBOUND_PER_S": "1000",
            }
            if use_redis:
                redis = RedisProcess(tmp / "redis")
                redis.start()
                env["LIVECORE_REDIS_URL"] = redis.url
            ports = [free_port() for _ in range(args.nodes)]
            own: list[str] = []  # with --processes, each one's address
            if args.processes > 1:
                first = free_ports(args.processes)
                env["LIVECORE_PROCESSES"] = str(args.processes)
                env["LIVECORE_NODE__INTERNAL_PORT"] = str(first)
                own = [f"http://127.0.0.1:{first + i}" for i in range(args.processes)]
            for n, port in enumerate(ports):
                log = tmp / f"server{n}.log"
                proc = start_server(
                    port, tmp / f"node{n}", log, env={**env, "LIVECORE_LOG_LEVEL": args.log_level},
                    preexec=_server_preexec, also_ready=own,
                )  # fmt: skip
                servers.append(proc)
                logs.append(log)
            bases = [f"http://127.0.0.1:{p}" for p in ports]
            print(f"cores: {os.cpu_count()}; nodes: {args.nodes}"
                  f"{' with Redis' if use_redis else ''}; server processes {args.processes};"
                  f" open-file limit {nofile}")  # fmt: skip

            creator = _register(bases[0], "creator", creator=True)
            slug = f"premiere-{secrets.token_hex(4)}"
            post_json(f"{bases[0]}/api/v1/streams", {"slug": slug}, str(creator["token"]))
            with ThreadPoolExecutor(4) as pool:
                users = list(
                    pool.map(
                        lambda i: _register(bases[i % len(bases)], f"user{i}"),
                        range(args.senders + 1),
                    )
                )
            victim = int(users[0]["user"]["id"])
            sender_tokens = [str(u["token"]) for u in users[1:]]

            procs = [psutil.Process(p) for s in servers for p in serve_processes(s.pid)]
            _cpu(procs)
            rss0 = [p.memory_info().rss for p in procs]
            ctx = multiprocessing.get_context("spawn")
            for w in range(args.generators):
                parent, child = ctx.Pipe()
                proc_w = ctx.Process(
                    target=_viewer_worker,
                    args=(child, w, args.generators, ports, slug, victim, args.timed_every),
                    daemon=True,
                )
                proc_w.start()
                workers.append(proc_w)
                conns.append(parent)
            run = _Run(
                args, bases, slug, str(creator["token"]), victim, sender_tokens, conns, procs,
                own or bases, args.profile_dir,
            )  # fmt: skip
            if _join(run, args.viewers, args.join_rate, rss0):
                uvloop.run(_phases(run))
            for conn in conns:
                conn.send(("quit",))
                with contextlib.suppress(EOFError, OSError):
                    if conn.poll(30):
                        conn.recv()
        finally:
            for w_proc in workers:
                w_proc.join(10)
                if w_proc.is_alive():
                    w_proc.terminate()
                    w_proc.join(5)
            for proc in servers:
                stop_server(proc)
            if redis is not None:
                redis.stop()
            pg.stop()
            _summarise_logs(logs, args.keep_dir)


def _summarise_logs(logs: list[Path], keep: Path | None) -> None:
    for n, log in enumerate(logs):
        if not log.exists():
            continue
        lines = log.read_text(errors="replace").splitlines()
        bad = [
            ln
            for ln in lines
            if any(word in ln for word in (" WARNING ", " ERROR ", " CRITICAL ", "Traceback"))
        ]
        kinds = Counter(" ".join(ln.split()[2:6]) for ln in bad)
        print(f"server {n} log: {len(lines)} lines, {len(bad)} warnings/errors")
        for text, number in kinds.most_common(8):
            print(f"    {number:6d} x {text}")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, keep / log.name)


if __name__ == "__main__":
    main()
