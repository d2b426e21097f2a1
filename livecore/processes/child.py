"""A child's side of `livecore serve --processes N`: what its parent handed it.

The parent passes, on the hidden `--supervised` option, the process's number, the file
descriptors of its share of the public port and of its own port, and of its end of a
socket pair to the parent, and whether the process is started again after it died. The
child says "ready" on that line once it serves; when the line reads end-of-file, the parent
is gone (even by kill -9) and the child stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass

READY = b"ready\n"


@dataclass(frozen=True, slots=True)
class Supervised:
    index: int  # from 1
    count: int
    listen_fd: int
    internal_fd: int
    line_fd: int

    @classmethod
    def parse(cls, text: str) -> Supervised:
        """From the `--supervised` option: INDEX,COUNT,LISTEN_FD,INTERNAL_FD,LINE_FD."""
        index, count, listen_fd, internal_fd, line_fd = (int(x) for x in text.split(","))
        return cls(index, count, listen_fd, internal_fd, line_fd)

    def option(self) -> str:
        return f"{self.index},{self.count},{self.listen_fd},{self.internal_fd},{self.line_fd}"

    def listen_socket(self) -> socket.socket:
        return socket.socket(fileno=self.listen_fd)

    def internal_socket(self) -> socket.socket:
        return socket.socket(fileno=self.internal_fd)


class ParentLine:
    """The child's end of the line to its parent."""

    def __init__(self, fd: int) -> None:
        self._sock = socket.socket(fileno=fd)
        self._sock.setblocking(False)
        self._loop: asyncio.AbstractEventLoop | None = None

    def ready(self) -> None:
        # A few bytes into an empty socket buffer: never blocks.
        with contextlib.suppress(OSError):
            self._sock.send(READY)

    def on_parent_gone(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the running loop) once the parent has gone."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable, callback)

    def _readable(self, callback: Callable[[], None]) -> None:
        try:
            data = self._sock.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            callback()

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._loop = None
        self._sock.close()
