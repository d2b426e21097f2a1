"""Where recordings are kept: the `RecordingStorage` seam and its one implementation, the
local disk.

A recording is named by its path relative to the data directory ("recordings/7/2026…Z", as
the database keeps it) and holds objects named relative to it ("seg-3.m4s",
"360p/init-0.mp4"). Writing goes through a `RecordingSink`, one per recording, whose calls
block: the packaging worker makes them from its own thread or process, several times a
second, so the local one is a bare file write and rename. The live edge (parts) is read
straight from the sink's directory by the LL-HLS origin, never through this seam.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredObject:
    name: str  # relative to its recording, "/"-separated
    size: int  # bytes


class RecordingSink(Protocol):
    """One recording being written. Blocking; raises OSError when the storage refuses."""

    def open(self) -> None:
        """Make the recording ready to take objects."""
        ...

    def put(self, name: str, data: bytes) -> None:
        """Create or replace an object atomically: readers see all of it or none."""
        ...

    def discard(self, name: str) -> None:
        """Remove an object if it exists."""
        ...


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
        """One object whole; FileNotFoundError when it does not exist."""
        ...

    def local_file(self, path: str, name: str) -> Path | None:
        """A file to send as it is (no copy through memory), or None when this storage
        has no local copy and the object is `read`."""
        ...

    async def delete(self, path: str) -> bool:
        """Delete the recording and all its objects; whether it was stored here."""
        ...


class DiskSink:
    """A recording written into one directory. Picklable: a packaging process makes its own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def put(self, name: str, data: bytes) -> None:
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, self.directory / name)

    def discard(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)


class LocalDisk:
    """Recordings as directories under the data directory (`RecordingStorage`)."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir

    def sink(self, directory: Path) -> DiskSink:
        return DiskSink(directory)

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
        return [
            StoredObject(f.relative_to(directory).as_posix(), f.stat().st_size)
            for f in directory.rglob("*")
            if f.is_file() and not f.name.startswith(".")  # "." + name + ".tmp": half-written
        ]

    async def read(self, path: str, name: str) -> bytes:
        return await asyncio.to_thread((self._data_dir / path / name).read_bytes)

    def local_file(self, path: str, name: str) -> Path | None:
        return self._data_dir / path / name

    async def delete(self, path: str) -> bool:
        return await asyncio.to_thread(self.delete_now, path)

    def delete_now(self, path: str) -> bool:
        """`delete`, blocking."""
        directory = self.directory(path)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        return directory is not None
