"""Where recordings are kept: the `RecordingStorage` seam and its one implementation, the
local disk.

A recording is named by its path relative to the data directory ("recordings/7/2026…Z", as
the database keeps it) and holds objects named relative to it ("seg-3.m4s",
"360p/init-0.mp4"). Writing goes through `sink.py` instead, from the packaging worker.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredObject:
    name: str  # relative to its recording, "/"-separated
    size: int  # bytes


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

    def local_file(self, path: str, name: str) -> Path | None:
        return self._data_dir / path / name

    async def delete(self, path: str) -> bool:
        return await asyncio.to_thread(self._delete, path)

    def _delete(self, path: str) -> bool:
        directory = self.directory(path)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        return directory is not None
