"""Writing a recording: the `RecordingSink` seam (one per recording being written) and the
local disk's.

Its calls block: the packaging worker makes them from its own thread or process, several
times a second, so the local one is a bare file write and rename. The live edge (parts) is
read straight from the sink's directory by the LL-HLS origin, never through a seam. Kept
apart from storage.py so the packaging process imports no asyncio.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol


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

    def get(self, name: str) -> bytes | None:
        """An object's bytes, None when it does not exist (a recording being resumed)."""
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

    def get(self, name: str) -> bytes | None:
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None
