"""A real S3-compatible server for tests: moto in server mode, a process of its own on
127.0.0.1 and a free port, which a test may stop and start again (on the same port)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class S3Server:
    """`moto.server` on loopback. Its objects live in its memory: a restart empties it."""

    def __init__(self, log_dir: Path) -> None:
        self.port = _free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._log = log_dir / "moto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> None:
        """Start the server and return once it answers. Blocking: call it in a thread."""
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start: see {self._log}") from None
                time.sleep(0.1)

    def create_bucket(self, name: str) -> None:
        """Blocking: call it in a thread."""
        request = urllib.request.Request(f"{self.endpoint_url}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        """Stop the server (by its pid) and wait for it. Blocking: call it in a thread."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
