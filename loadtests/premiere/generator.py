"""A generator process: its share of the premiere's chat viewers and LL-HLS players.

Started (spawn) by the orchestrator with a `Plan`; runs on its own until `plan.end_at`, puts
a small progress tick on the queue every second and its whole record at the end. Viewers
that lose their socket (a node killed, a refusal) come back through any node, after a
jittered pause or the Retry-After the server advised. Every `tracked_every`-th viewer keeps
the chat lines it received (live or in the hello's history): the orchestrator checks them
against the acked lines for loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import uvloop

from loadtests.bench_ingest import follow
from loadtests.premiere.chatclient import ChatSocket, jitter, upgrade_request
from loadtests.premiere.deployment import raise_nofile

LINE_PREFIX = "premiere "
JOIN_TIMEOUT_S = 15.0
PLAYER_CHUNK_S = 4.0


@dataclass(frozen=True, slots=True)
class Plan:
    index: int
    bases: tuple[str, ...]
    slug: str
    t0: float  # wall time of the run's start
    join_at: float  # wall time the ramp starts
    over_s: float
    viewers: int  # this process's chat viewers
    tracked_every: int
    players: int
    glass: int  # of the players: how many decode parts for glass-to-glass
    lines: int  # the most chat lines the storm sends (seq numbers 0..lines-1)
    end_at: float


class _Viewer:
    __slots__ = ("attempts", "first_join", "joined", "node", "seen", "sock", "tracked")

    def __init__(self, node: int, tracked: bool, lines: int) -> None:
        self.node = node
        self.tracked = tracked
        self.seen = bytearray(lines) if tracked else None
        self.sock: ChatSocket | None = None
        self.joined = False
        self.first_join = 0.0
        self.attempts = 0


class _Parsed:
    """One distinct frame, parsed once however many viewers receive it."""

    __slots__ = ("hello", "history", "lines")

    def __init__(self, payload: bytes) -> None:
        self.hello = False
        self.lines: list[tuple[int, int]] = []  # (seq, send ns)
        self.history: list[int] = []
        try:
            events = json.loads(payload)
        except ValueError:
            events = []
        for event in events if isinstance(events, list) else []:
            if not isinstance(event, dict):
                continue
            if event.get("type") == "hello":
                self.hello = True
                for old in event.get("history") or ():
                    seq = _line(old)
                    if seq is not None:
                        self.history.append(seq[0])
            else:
                seq = _line(event)
                if seq is not None:
                    self.lines.append(seq)


def _line(event: Any) -> tuple[int, int] | None:
    if not isinstance(event, dict) or event.get("type") != "chat":
        return None
    text = event.get("text", "")
    if not isinstance(text, str) or not text.startswith(LINE_PREFIX):
        return None
    _, seq, sent = text.split(" ", 2)
    return int(seq), int(sent)


class Generator:
    def __init__(self, plan: Plan, out: Any) -> None:
        self.plan = plan
        self.out = out
        self.viewers: list[_Viewer] = []
        self.parsed: dict[bytes, _Parsed] = {}
        self.joins: list[tuple[float, float]] = []  # (t, ms) of each successful join
        self.join_kinds: Counter[str] = Counter()  # "first", "rejoin", refusals, timeouts
        self.chat_ms: dict[int, array[int]] = defaultdict(lambda: array("i"))  # second -> ms
        self.duplicates = 0
        self.errors: list[tuple[float, str]] = []
        self.glass: list[tuple[float, float]] = []  # (t, ms) per decoded frame (sampled)
        self.parts: Counter[int] = Counter()  # second -> parts fetched
        self.connected: list[tuple[float, int]] = []
        self.cpu: list[tuple[float, float]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False

    def now(self) -> float:
        return time.time() - self.plan.t0

    # -- chat viewers -------------------------------------------------------------------

    def _on_text(self, viewer: _Viewer, sock: ChatSocket, payload: bytes) -> None:
        parsed = self.parsed.get(payload)
        if parsed is None:
            if len(self.parsed) > 512:
                self.parsed.clear()
            parsed = self.parsed[payload] = _Parsed(payload)
        now_ns = time.time_ns()
        if parsed.hello and not viewer.joined:
            viewer.joined = True
            t = self.now()
            self.joins.append((t, (now_ns - sock.started_ns) / 1e6))
            self.join_kinds["rejoin" if viewer.first_join else "first"] += 1
            viewer.first_join = viewer.first_join or time.time()
            if viewer.seen is not None:
                for seq in parsed.history:
                    if 0 <= seq < len(viewer.seen):
                        viewer.seen[seq] = 1
        if not parsed.lines or viewer.seen is None:
            return
        second = int(now_ns / 1e9 - self.plan.t0)
        bucket = self.chat_ms[second]
        for seq, sent_ns in parsed.lines:
            if 0 <= seq < len(viewer.seen):
                if viewer.seen[seq]:
                    self.duplicates += 1
                viewer.seen[seq] = 1
            bucket.append(int((now_ns - sent_ns) / 1e6))

    def _on_refused(self, viewer: _Viewer, status: int, retry_after: float | None) -> None:
        self.join_kinds[f"HTTP {status}"] += 1
        if status != 503:
            self.errors.append((self.now(), f"chat upgrade HTTP {status}"))
        delay = retry_after * jitter(1.0, 1.5) if retry_after else jitter(0.5, 2.0)
        self._later(delay, viewer)

    def _on_lost(self, viewer: _Viewer, sock: ChatSocket) -> None:
        if sock is not viewer.sock or sock.closing or self.stopping:
            return
        was_joined = viewer.joined
        viewer.joined = False
        viewer.sock = None
        if was_joined:
            self.join_kinds["dropped"] += 1
        self._later(jitter(0.2, 1.5), viewer)

    def _later(self, delay: float, viewer: _Viewer) -> None:
        if self.stopping or time.time() + delay > self.plan.end_at:
            return
        viewer.sock = None
        viewer.joined = False
        # Any node: a real client comes back through the load balancer.
        viewer.node = random.randrange(len(self.plan.bases))
        self._spawn(self._connect(viewer, delay))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self, viewer: _Viewer, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self.stopping:
            return
        viewer.attempts += 1
        base = urlsplit(self.plan.bases[viewer.node])
        request = upgrade_request(base.netloc, f"/ws/{self.plan.slug}")
        sock = ChatSocket(
            request,
            lambda s, p: self._on_text(viewer, s, p),
            lambda s, status, retry: self._on_refused(viewer, status, retry),
            lambda s: self._on_lost(viewer, s),
        )
        viewer.sock = sock
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(JOIN_TIMEOUT_S):
                await loop.create_connection(lambda: sock, base.hostname or "", base.port or 80)
        except (OSError, TimeoutError) as exc:
            if viewer.sock is sock:
                viewer.sock = None
                self.join_kinds[f"connect: {type(exc).__name__}"] += 1
                self._later(jitter(0.3, 1.0), viewer)
            return
        # Still no hello after the timeout: give this attempt up and come back.
        await asyncio.sleep(JOIN_TIMEOUT_S)
        if viewer.sock is sock and not viewer.joined and not self.stopping:
            self.join_kinds["timeout"] += 1
            sock.close()
            self._later(jitter(0.3, 1.0), viewer)

    async def _ramp(self) -> None:
        plan = self.plan
        await asyncio.sleep(max(0.0, plan.join_at - time.time()))
        rate = plan.viewers / plan.over_s
        start = time.monotonic()
        for i in range(plan.viewers):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.stopping:
                return
            node = (plan.index + i) % len(plan.bases)  # round robin, as a load balancer
            viewer = _Viewer(node, i % plan.tracked_every == 0, plan.lines)
            self.viewers.append(viewer)
            self._spawn(self._connect(viewer))

    # -- LL-HLS players -----------------------------------------------------------------

    async def _player(self, n: int, parse: bool) -> None:
        plan = self.plan
        await asyncio.sleep(max(0.0, plan.join_at - time.time()) + n * 0.05)
        node = (plan.index + n) % len(plan.bases)
        timeout = aiohttp.ClientTimeout(total=20)
        for _ in range(100_000):
            if self.stopping or time.time() >= plan.end_at - 1:
                return
            until = time.monotonic() + min(PLAYER_CHUNK_S, plan.end_at - time.time() - 1)
            start = time.time()
            try:
                async with aiohttp.ClientSession(plan.bases[node], timeout=timeout) as http:
                    window = (start, start + 3600)
                    result = await follow(http, plan.slug, until, window, parse=parse)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                self.errors.append((self.now(), f"player: {type(exc).__name__}"))
                node = random.randrange(len(plan.bases))
                await asyncio.sleep(jitter(0.5, 1.5))
                continue
            t = self.now()
            self.parts[int(t)] += result.parts
            self.glass.extend((t, s * 1000) for s in result.latencies_s[::10])
            if result.errors:
                # A node gone, or the stream not live yet: try any node after a pause.
                node = random.randrange(len(plan.bases))
                await asyncio.sleep(jitter(0.5, 1.5))

    # -- the run ------------------------------------------------------------------------

    async def run(self) -> None:
        plan = self.plan
        self._spawn(self._ramp())
        for n in range(plan.players):
            self._spawn(self._player(n, n < plan.glass))
        cpu0, wall0 = time.process_time(), time.monotonic()
        while time.time() < plan.end_at:
            await asyncio.sleep(1.0)
            cpu1, wall1 = time.process_time(), time.monotonic()
            t = self.now()
            busy = (cpu1 - cpu0) / max(1e-6, wall1 - wall0)
            cpu0, wall0 = cpu1, wall1
            joined = sum(1 for v in self.viewers if v.joined)
            self.connected.append((t, joined))
            self.cpu.append((t, busy))
            self.out.put(("tick", plan.index, t, joined, busy))
        self.stopping = True
        for viewer in self.viewers:
            if viewer.sock is not None:
                viewer.sock.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.out.put(("done", plan.index, self.record()))

    def record(self) -> dict[str, Any]:
        tracked = [
            (v.first_join, bytes(v.seen)) for v in self.viewers if v.seen is not None and v.joined
        ]
        return {
            "viewers": len(self.viewers),
            "joined_at_end": sum(1 for v in self.viewers if v.joined),
            "ever_joined": sum(1 for v in self.viewers if v.first_join),
            "joins": self.joins,
            "join_kinds": dict(self.join_kinds),
            "chat_ms": {s: list(a) for s, a in self.chat_ms.items()},
            "duplicates": self.duplicates,
            "tracked": tracked,
            "errors": self.errors,
            "glass": self.glass,
            "parts": dict(self.parts),
            "connected": self.connected,
            "cpu": self.cpu,
        }


def main(plan: Plan, out: Any) -> None:
    raise_nofile()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops us
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(Generator(plan, out).run())
