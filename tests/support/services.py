"""Throwaway PostgreSQL and Redis servers for the test session, on loopback only."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from livecore.store.embedded import EmbeddedPostgres


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgres(tmp: Path) -> Iterator[str]:
    """A PostgreSQL DSN: LIVECORE_TEST_DATABASE_URL, or an embedded server in `tmp`."""
    given = os.environ.get("LIVECORE_TEST_DATABASE_URL")
    if given:
        yield given
        return
    server = EmbeddedPostgres(tmp / "postgres")
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[RedisProcess]:
    """A redis-server on a free loopback port, without persistence; stopped by its PID."""
    proc = RedisProcess(tmp)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


class RedisProcess:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (bin/test installs it)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
