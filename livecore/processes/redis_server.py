"""A private redis-server for the processes of one box, on a Unix socket in the data dir.

Started by the parent of several processes when no `redis_url` is configured: the processes'
bus, stream directory and shared limits go through it. Nothing is persisted (no RDB, no AOF):
like the in-process bus it replaces, it holds only live state. A parent that was killed
leaves it running; the next start finds its PID file and stops it.

Starting and stopping block: call them before the event loop starts or after it ends.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 10.0
# A Unix socket's path must fit in sun_path (108 bytes on Linux, with its NUL).
_MAX_SOCKET_PATH = 100


class RedisServerError(Exception):
    """The private redis-server could not be started; the message says why."""


class PrivateRedis:
    """A redis-server owned by this process until stop()."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir.resolve()
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self.socket_path = self.run_dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> str:
        """Start the server, wait until it answers, and return its URL."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError(
                "several processes without redis_url need Debian's redis-server "
                "(apt-get install redis-server), or set LIVECORE_REDIS_URL"
            )
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._stop_leftover()
        if len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            self._tmp = Path(tempfile.mkdtemp(prefix="livecore-redis-"))
            self.socket_path = self._tmp / "redis.sock"
        self.socket_path.unlink(missing_ok=True)
        log = self.run_dir / "redis.log"
        args = [
            binary, "--port", "0", "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
            "--dir", str(self.run_dir), "--logfile", str(log), "--loglevel", "warning",
            "--daemonize", "no",
        ]  # fmt: skip
        # Its own session: a Ctrl-C in the terminal reaches livecore, which stops it last.
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self._pid_file().write_text(f"{self._proc.pid}\n{self.socket_path}\n")
        try:
            self._wait_answering(log)
        except BaseException:
            self.stop()
            raise
        logger.info("private redis-server running on %s (pid %d)", self.socket_path, self.pid)
        return self.url

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("private redis-server (pid %d) did not stop; killing it", proc.pid)
            proc.kill()
            proc.wait()
        self._pid_file().unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        logger.info("private redis-server stopped")

    def _wait_answering(self, log: Path) -> None:
        assert self._proc is not None
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
        deadline = time.monotonic() + _START_TIMEOUT_S
        try:
            while True:
                if self._proc.poll() is not None:
                    tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                    raise RedisServerError(
                        f"redis-server exited with code {self._proc.returncode}: {tail.strip()}"
                    )
                try:
                    if self.socket_path.exists() and client.ping():
                        return
                except (RedisError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RedisServerError(f"redis-server did not answer on {self.socket_path}")
                time.sleep(0.05)
        finally:
            client.close()

    def _pid_file(self) -> Path:
        return self.run_dir / "redis.pid"

    def _stop_leftover(self) -> None:
        """Stop the private redis-server a killed parent left running, if it is one."""
        try:
            pid_text, socket_text = self._pid_file().read_text().split("\n")[:2]
            process = psutil.Process(int(pid_text))
            # redis-server rewrites its command line; the socket it listens on tells.
            ours = process.name() == "redis-server" and any(
                str(c.laddr) == socket_text for c in process.net_connections(kind="unix")
            )
        except (FileNotFoundError, ValueError, psutil.Error):
            ours = False
        if ours:
            logger.warning(
                "a private redis-server (pid %d) was left running by a livecore that ended "
                "without stopping it; stopping it", process.pid,
            )  # fmt: skip
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT_S)
            except psutil.TimeoutExpired:
                process.kill()
        self._pid_file().unlink(missing_ok=True)
