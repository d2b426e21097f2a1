"""Worker processes with two one-way pipes, read and written from the event loop.

A worker is spawned (never forked: a fork would copy the event loop, its sockets and threads)
in a thread, because starting a process blocks. The parent keeps only its ends of the pipes,
so a worker's death is an EOF on the parent's side and the parent's on the worker's. Messages
use multiprocessing.Connection's own framing (a 4-byte big-endian length, then the payload):
the worker reads and writes them with `recv_bytes`/`send_bytes`, the loop through asyncio
pipe transports (`MessageSplitter`, `framed`), so the loop never blocks on a pipe.

Imports nothing from livecore.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

LENGTH = struct.Struct("!i")  # multiprocessing.Connection's framing
END = LENGTH.pack(0)  # an empty message: what livecore's workers take as "no more input"


def framed(payload: bytes) -> bytes:
    """One message as the worker's `recv_bytes` reads it."""
    return LENGTH.pack(len(payload)) + payload


class MessageSplitter(asyncio.Protocol):
    """Splits a worker's output pipe into messages; `on_eof` once the pipe closes."""

    def __init__(self, on_message: Callable[[bytes], None], on_eof: Callable[[], None]) -> None:
        self._buffer = bytearray()
        self._on_message = on_message
        self._on_eof = on_eof

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= LENGTH.size:
            (size,) = LENGTH.unpack_from(buffer)
            end = LENGTH.size + size
            if size < 0 or len(buffer) < end:
                break  # messages are far below 2 GiB, so -1 (a 64-bit length) never comes
            message = bytes(buffer[LENGTH.size : end])
            del buffer[:end]
            self._on_message(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_eof()


@dataclass(frozen=True, slots=True)
class Spawned:
    process: BaseProcess
    to_worker: Connection  # the loop writes here
    from_worker: Connection  # and reads the worker's messages here


def spawn(target: Callable[..., None], args: Sequence[Any], name: str) -> Spawned:
    """Start `target(from_parent, to_parent, *args)` in a new process (blocking: call it in a
    thread)."""
    ctx = multiprocessing.get_context("spawn")
    down_r, down_w = ctx.Pipe(duplex=False)
    up_r, up_w = ctx.Pipe(duplex=False)
    process = ctx.Process(target=target, args=(down_r, up_w, *args), name=name, daemon=True)
    try:
        process.start()
    except BaseException:
        for conn in (down_r, down_w, up_r, up_w):
            conn.close()
        raise
    down_r.close()
    up_w.close()
    return Spawned(process, down_w, up_r)


async def connect(
    spawned: Spawned, on_message: Callable[[bytes], None], on_eof: Callable[[], None]
) -> tuple[asyncio.WriteTransport, asyncio.ReadTransport]:
    """The loop's transports on a spawned worker's pipes."""
    loop = asyncio.get_running_loop()
    splitter = MessageSplitter(on_message, on_eof)
    reader, _ = await loop.connect_read_pipe(lambda: splitter, spawned.from_worker)
    writer, _ = await loop.connect_write_pipe(asyncio.Protocol, spawned.to_worker)
    return writer, reader


def start(target: Callable[..., None], args: Sequence[Any], name: str) -> asyncio.Future[Spawned]:
    """`spawn` in a thread. An executor future, not a task: a cancellation can never lose
    the process handle."""
    return asyncio.get_running_loop().run_in_executor(None, spawn, target, args, name)


async def release(
    spawning: asyncio.Future[Spawned],
    writer: asyncio.BaseTransport | None,
    reader: asyncio.BaseTransport | None,
    grace_s: float,
) -> int | None:
    """After the transports (if any) are closed: close the pipes never handed to one and
    reap the worker (see `reap`). None when it never started or could not be reaped."""
    await asyncio.wait([spawning])
    if spawning.cancelled() or spawning.exception() is not None:
        return None
    spawned = spawning.result()
    if writer is None:
        spawned.to_worker.close()
    if reader is None:
        spawned.from_worker.close()
    return await asyncio.to_thread(reap, spawned.process, grace_s)


def reap(process: BaseProcess, grace_s: float) -> int | None:
    """Wait `grace_s` for the worker to exit, then SIGTERM and SIGKILL it by its PID
    (blocking: call it in a thread). Its exit code, None if it could not be reaped."""
    process.join(grace_s)
    if process.exitcode is None:
        process.terminate()
        process.join(2.0)
    if process.exitcode is None:
        process.kill()
        process.join(2.0)
    code = process.exitcode
    if code is not None:
        process.close()
    return code
