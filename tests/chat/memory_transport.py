"""An in-memory socket transport for the chat room tests: what a room writes, kept."""

from __future__ import annotations

import json
from typing import Any


class MemoryTransport:
    """A socket transport that keeps what is written; `backlog` is what the client has not
    read yet."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.backlog = 0
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.frames.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.backlog

    def abort(self) -> None:
        self.aborted = True

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for frame in self.frames:
            assert frame[0] == 0x81  # one whole text frame per write
            header = 2 if frame[1] < 126 else 4 if frame[1] == 126 else 10
            out.extend(json.loads(frame[header:]))
        return out
