"""LL-HLS viewers for bench_edge: many cheap clients per process that follow a live playlist.

Each viewer is one keep-alive HTTP/1.1 connection (a small asyncio Protocol, not aiohttp,
whose client costs several times more CPU per request: on a small machine the generator must
not be what is measured). It plays like an LL-HLS player at the live edge: the media playlist
once, the init segment, then a blocking reload for the part the preload hint names
(`?_HLS_msn=M&_HLS_part=P`, as hls.js asks) and a GET of every part it newly lists, in order,
until the end of the run. The playlists the viewers of one process receive are mostly the
same bytes, so each distinct body is parsed once per process.

A process reports, inside the measurement window: when each part arrived at each viewer, how
long part requests and blocking reloads took, the requests it made, errors by kind, its own
CPU time, and how late its event loop woke up (how busy the generator was).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import cast

import uvloop

from loadtests.bench_ingest import Playlist, parse_playlist

REQUEST_TIMEOUT_S = 15.0
LAG_PROBE_S = 0.05
READY_WAIT_S = 300.0
_PARSED_KEPT = 64


class HttpError(Exception):
    """The connection broke or the answer could not be read."""


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time. Answers are
    framed by Content-Length, as livecore frames every HLS answer it makes from memory."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._status = 0
        self._body_at = -1
        self._end = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they quack the same.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(HttpError(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._waiter is None or self._waiter.done():
            return
        if self._end < 0:
            head_end = self._buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            lines = bytes(self._buf[:head_end]).decode("latin-1").split("\r\n")
            length = -1
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length < 0:
                self._fail(HttpError(f"no Content-Length: {lines[0]}"))
                return
            self._status = int(lines[0].split(" ", 2)[1])
            self._body_at = head_end + 4
            self._end = self._body_at + length
        if len(self._buf) >= self._end:
            body = bytes(self._buf[self._body_at : self._end])
            del self._buf[: self._end]
            self._end = -1
            self._waiter.set_result((self._status, body))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.transport is None or self.transport.is_closing():
            raise HttpError("not connected")
        self._waiter = asyncio.get_running_loop().create_future()
        self._buf.clear()
        self._end = -1
        self.transport.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                return await self._waiter
        except TimeoutError:
            self._fail(HttpError("timeout"))
            raise HttpError(f"no answer within {REQUEST_TIMEOUT_S:.0f} s") from None


class _Client:
    """A viewer's connection, made again when it breaks."""

    def __init__(self, port: int, stats: Stats) -> None:
        self._port = port
        self._conn: HttpConnection | None = None
        self._stats = stats

    async def get(self, path: str, window: tuple[float, float]) -> tuple[int, bytes]:
        if self._conn is None or self._conn.transport is None:
            loop = asyncio.get_running_loop()
            _, self._conn = await loop.create_connection(HttpConnection, "127.0.0.1", self._port)
        if window[0] <= time.time() <= window[1]:
            self._stats.requests += 1
        try:
            return await self._conn.get(path)
        except HttpError:
            self._conn = None
            raise

    def close(self) -> None:
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()


@dataclass
class Stats:
    """What one generator process saw (inside the window, unless said otherwise)."""

    viewers: int = 0
    playing: int = 0  # viewers that received a part inside the window
    arrivals: dict[tuple[int, int], list[float]] = field(default_factory=lambda: defaultdict(list))
    part_fetch_s: list[float] = field(default_factory=list)
    reload_s: list[float] = field(default_factory=list)
    requests: int = 0
    timeouts: int = 0  # blocking reloads answered 503 (nothing new within the reload timeout)
    errors: Counter[str] = field(default_factory=Counter)  # over the whole run
    cpu_s: float = 0.0
    waited_s: float = 0.0  # ready to run, but another process had the core
    wall_s: float = 0.0
    loop_lag_s: list[float] = field(default_factory=list)


class _Parsed:
    """Each distinct playlist body parsed once per process (most are the same bytes)."""

    def __init__(self) -> None:
        self._kept: OrderedDict[bytes, Playlist] = OrderedDict()

    def __call__(self, body: bytes) -> Playlist:
        found = self._kept.get(body)
        if found is None:
            found = self._kept[body] = parse_playlist(body.decode())
            if len(self._kept) > _PARSED_KEPT:
                self._kept.popitem(last=False)
        return found


async def _viewer(
    port: int, prefix: str, join_at: float, window: tuple[float, float], stats: Stats,
    parsed: _Parsed,
) -> None:  # fmt: skip
    await asyncio.sleep(max(0.0, join_at - time.time()))
    client = _Client(port, stats)
    played = False
    try:
        status, body = await client.get(prefix + "index.m3u8", window)
        if status != 200:
            stats.errors[f"first playlist {status}"] += 1
            return
        playlist = parsed(body)
        done = playlist.parts[-1][0] if playlist.parts else (-1, -1)
        have_init = ""
        for _ in range(1_000_000):  # bounded; ends at the window's end
            if time.time() > window[1] or playlist.ended or playlist.hint is None:
                break
            msn, part = playlist.hint
            started = time.perf_counter()
            try:
                status, body = await client.get(
                    f"{prefix}index.m3u8?_HLS_msn={msn}&_HLS_part={part}", window
                )
            except (HttpError, OSError) as exc:
                stats.errors[f"blocking reload: {type(exc).__name__}"] += 1
                await asyncio.sleep(0.5)
                continue
            now = time.time()
            if status == 503:
                stats.timeouts += 1
                continue
            if status != 200:
                stats.errors[f"blocking reload {status}"] += 1
                await asyncio.sleep(0.5)
                continue
            if window[0] <= now <= window[1]:
                stats.reload_s.append(time.perf_counter() - started)
            playlist = parsed(body)
            for key, uri, map_uri in playlist.parts:
                if key <= done:
                    continue
                try:
                    if map_uri != have_init:  # a player needs the init segment once
                        status, _ = await client.get(prefix + map_uri, window)
                        if status != 200:
                            stats.errors[f"init {status}"] += 1
                        have_init = map_uri
                    started = time.perf_counter()
                    status, data = await client.get(prefix + uri, window)
                except (HttpError, OSError) as exc:
                    stats.errors[f"part: {type(exc).__name__}"] += 1
                    await asyncio.sleep(0.5)
                    break  # reload the playlist
                arrival = time.time()
                done = key
                if status != 200 or not data:
                    stats.errors[f"part {status}"] += 1
                    continue
                if window[0] <= arrival <= window[1]:
                    stats.part_fetch_s.append(time.perf_counter() - started)
                    stats.arrivals[key].append(arrival)
                    played = True
    except (HttpError, OSError) as exc:
        stats.errors[f"join: {type(exc).__name__}"] += 1
    finally:
        client.close()
        stats.playing += played


async def _lag_probe(until: float, window: tuple[float, float], stats: Stats) -> None:
    """How late the loop wakes from a short sleep: near 0 while the generator keeps up."""
    for _ in range(1_000_000):
        if time.time() > until:
            return
        asked = time.perf_counter()
        await asyncio.sleep(LAG_PROBE_S)
        if window[0] <= time.time() <= window[1]:
            stats.loop_lag_s.append(time.perf_counter() - asked - LAG_PROBE_S)


async def _run(
    port: int, prefix: str, viewers: int, start_at: float, ramp_s: float,
    window: tuple[float, float],
) -> Stats:  # fmt: skip
    stats = Stats(viewers=viewers)
    parsed = _Parsed()
    probe = asyncio.create_task(_lag_probe(window[1], window, stats))
    cpu0 = time.process_time()
    waited0 = _waited_s()
    wall0 = time.time()
    joins = [start_at + ramp_s * i / max(1, viewers) for i in range(viewers)]
    try:
        async with asyncio.timeout(window[1] - time.time() + REQUEST_TIMEOUT_S + 10):
            await asyncio.gather(*(_viewer(port, prefix, at, window, stats, parsed)
                                   for at in joins))  # fmt: skip
    except TimeoutError:
        stats.errors["viewers still running after the window"] += 1
    finally:
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe
    stats.cpu_s = time.process_time() - cpu0
    stats.waited_s = _waited_s() - waited0
    stats.wall_s = time.time() - wall0
    stats.arrivals = dict(stats.arrivals)  # picklable without the factory
    return stats


def _waited_s() -> float:
    """How long this thread (the event loop) waited for a core (Linux schedstat)."""
    try:
        with open("/proc/thread-self/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def generator_process(conn: Connection, port: int, prefix: str, viewers: int) -> None:
    """One generator process: `viewers` clients of http://127.0.0.1:{port}{prefix}. Says
    "ready" once imported, runs when told when to start and the window, sends its Stats."""
    conn.send("ready")
    if not conn.poll(READY_WAIT_S):
        return
    start_at, ramp_s, window = conn.recv()
    conn.send(uvloop.run(_run(port, prefix, viewers, start_at, ramp_s, window)))
