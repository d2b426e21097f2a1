"""Where recordings are kept: the `RecordingStorage` seam and its one implementation, the
local disk.

A recording is named by its path relative to the data directory ("recordings/7/2026…Z", as
the database keeps it) and holds objects named relative to it ("seg-3.m4s",
"360p/init-0.mp4"). Writing goes through `sink.py` instead, from the packaging worker.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredObject:
    name: str  # relative to its recording, "/"-separated
    size: int  # bytes


@dataclass(frozen=True, slots=True)
class ByteRange:
    """An HTTP byte range (RFC 9110 14.1.2): bytes `first`..`last` inclusive (`last` None:
    to the end), or with `suffix`, the last `suffix` bytes."""

    first: int = 0
    last: int | None = None
    suffix: int | None = None

    def header(self) -> str:
        if self.suffix is not None:
            return f"bytes=-{self.suffix}"
        return f"bytes={self.first}-{'' if self.last is None else self.last}"

    def within(self, size: int) -> tuple[int, int]:
        """(first, last) inclusive in an object of `size` bytes; UnsatisfiableRange if none."""
        if self.suffix is not None:
            first, last = max(0, size - self.suffix), size - 1
        else:
            first, last = self.first, size - 1 if self.last is None else min(self.last, size - 1)
        if first > last or first >= size:
            raise UnsatisfiableRange(size)
        return first, last


class StorageUnavailable(Exception):
    """The storage did not answer (a bucket that is down or too slow): try again later."""


class UnsatisfiableRange(Exception):
    """The asked range lies outside the object (HTTP 416)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range outside an object of {size} bytes")
        self.size = size


@dataclass(frozen=True, slots=True)
class ObjectStream:
    """An object, or a range of it, as it arrives. Iterate `chunks` to the end (or close it)."""

    size: int  # the whole object's
    first: int  # the first byte sent
    last: int  # the last byte sent (inclusive)
    chunks: AsyncGenerator[bytes, None]


async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


def slice_object(data: bytes, byte_range: ByteRange | None) -> ObjectStream:
    """An object held in memory, or a range of it, as a stream."""
    if byte_range is None:
        return ObjectStream(len(data), 0, len(data) - 1, _once(data))
    first, last = byte_range.within(len(data))
    return ObjectStream(len(data), first, last, _once(data[first : last + 1]))


class RecordingStorage(Protocol):
    """This node's recordings, by path. Each node keeps its own: a path that is not stored
    here (another node's recording) is not an error, just absent."""

    async def holds(self, path: str) -> bool:
        """Whether the recording is stored here."""
        ...

    async def objects(self, path: str) -> list[StoredObject] | None:
        """Every object of the recording, every rendition's (None: not stored here)."""
        ...

    async def read(self, path: str, name: str) -> bytes:
        """One object whole; FileNotFoundError when it does not exist, StorageUnavailable
        when the storage does not answer."""
        ...

    async def stream(self, path: str, name: str, byte_range: ByteRange | None) -> ObjectStream:
        """One object, or a range of it (None: whole), as it arrives: FileNotFoundError when
        it does not exist, UnsatisfiableRange when the range is outside it."""
        ...

    def local_file(self, path: str, name: str) -> Path | None:
        """A file to send as it is (no copy through memory), or None when this storage
        has no local copy and the object is `read` or `stream`ed."""
        ...

    async def delete(self, path: str) -> bool:
        """Delete the recording and all its objects; whether it was stored here."""
        ...


class LocalDisk:
    """Recordings as directories under the data directory (`RecordingStorage`)."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir

    def directory(self, path: str) -> Path | None:
        """The recording's directory if it is on this disk. None for another node's (each
        node records on its own disk, and sweeps it) or a path outside the data directory.
        Blocking."""
        if not path:
            return None
        directory = (self._data_dir / path).resolve()
        if directory.is_relative_to(self._data_dir.resolve()) and directory.is_dir():
            return directory
        return None

    async def holds(self, path: str) -> bool:
        return await asyncio.to_thread(self.directory, path) is not None

    async def objects(self, path: str) -> list[StoredObject] | None:
        return await asyncio.to_thread(self._objects, path)

    def _objects(self, path: str) -> list[StoredObject] | None:
        directory = self.directory(path)
        if directory is None:
            return None
        found = []
        for f in directory.rglob("*"):
            if f.name.startswith("."):
                continue  # "." + name + ".tmp": half-written
            try:
                if f.is_file():
                    name = f.relative_to(directory).as_posix()
                    found.append(StoredObject(name, f.stat().st_size))
            except FileNotFoundError:
                continue  # a part pruned while we listed (its recording is still written)
        return found

    async def read(self, path: str, name: str) -> bytes:
        return await asyncio.to_thread((self._data_dir / path / name).read_bytes)

    async def stream(self, path: str, name: str, byte_range: ByteRange | None) -> ObjectStream:
        return slice_object(await self.read(path, name), byte_range)

    def local_file(self, path: str, name: str) -> Path | None:
        return self._data_dir / path / name

    async def delete(self, path: str) -> bool:
        return await asyncio.to_thread(self._delete, path)

    def _delete(self, path: str) -> bool:
        directory = self.directory(path)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        return directory is not None
