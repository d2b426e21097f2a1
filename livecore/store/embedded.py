"""The embedded PostgreSQL (pgserver) used when no database_url is configured.

pgserver listens on a Unix socket only (never on a TCP address). Starting and stopping are
blocking calls: run them before the event loop starts or in a thread.

Several processes may share one server (a node and the CLI commands run beside it): pgserver
keeps their PIDs in `data_dir/.handle_pids.json`, and the last one to leave stops the server.
A process that is killed (kill -9, a crash, the OOM killer) never leaves that list, so the
server would never be stopped again: start() forgets such processes and adopts the server
they left running, after checking that postmaster.pid names a postgres of this data dir.

Imports nothing from livecore.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger(__name__)

_HANDLES = ".handle_pids.json"  # pgserver's list of the processes using the server
_POSTMASTER_PID = "postmaster.pid"  # written by postgres: its PID on the first line


class EmbeddedPostgres:
    """A PostgreSQL server living in `data_dir`, owned by this process until stop().

    `announce=False` logs starting and stopping at debug level (one-shot CLI commands, whose
    output is for the operator); what start() finds left behind is always a warning.
    """

    def __init__(self, data_dir: Path, *, announce: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None
        self._postmaster: psutil.Process | None = None
        self._level = logging.INFO if announce else logging.DEBUG

    def start(self) -> str:
        """Start (or join, or adopt) the server and return its DSN."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # pgserver keeps its lock file in the user's runtime dir; a headless machine may have
        # no XDG_RUNTIME_DIR, for which platformdirs warns: give it one under data_dir.
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self._runtime_dir()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver.postgres_server import PostgresServer

            # pgserver's own inter-process lock: no other process joins or leaves meanwhile.
            with PostgresServer._lock:
                self._take_over_leftovers()
            # pgserver re-exports get_server without declaring it public.
            self._server = pgserver.get_server(  # type: ignore[attr-defined]
                self.data_dir, cleanup_mode="stop"
            )
        dsn: str = self._server.get_uri()
        pid = self.pid()
        self._postmaster = psutil.Process(pid) if pid is not None else None
        logger.log(self._level, "embedded PostgreSQL running in %s (pid %s)", self.data_dir, pid)
        return dsn

    def pid(self) -> int | None:
        if self._server is None:
            return None
        pid = self._server.get_pid()
        return int(pid) if pid is not None else None

    def stop(self) -> None:
        """Stop the server if this process is its last user; say which happened."""
        if self._server is None:
            return
        self._server.cleanup()
        self._server = None
        postmaster, self._postmaster = self._postmaster, None
        if postmaster is not None and _running(postmaster):
            others = _live(self._handles())
            logger.log(
                self._level,
                "embedded PostgreSQL left running (pid %d) for the other processes using it: %s",
                postmaster.pid,
                ", ".join(map(str, others)) or "none known",
            )
        else:
            logger.log(self._level, "embedded PostgreSQL stopped")

    # -- what a killed process left behind ------------------------------------------------

    def _take_over_leftovers(self) -> None:
        postmaster = self._postmaster_process()
        handles = self._handles()
        live = _live(handles)
        if len(live) == len(handles):
            return
        ended = [pid for pid in handles if pid not in live]
        # Rewritten as pgserver writes it, so its count of users is right again.
        (self.data_dir / _HANDLES).write_text(json.dumps(live))
        if postmaster is None:
            logger.warning(
                "embedded PostgreSQL: processes %s ended without leaving it; it is not running",
                ended,
            )
        elif live:
            logger.warning(
                "embedded PostgreSQL (pid %d): processes %s ended without leaving it; "
                "joining it beside %s",
                postmaster.pid, ended, live,
            )  # fmt: skip
        else:
            logger.warning(
                "embedded PostgreSQL (pid %d) was left running by processes %s that ended "
                "without stopping it; adopting it (it stops when this process stops)",
                postmaster.pid, ended,
            )  # fmt: skip

    def _postmaster_process(self) -> psutil.Process | None:
        """The postgres that postmaster.pid names, if it really serves this data dir.

        A PID in a stale postmaster.pid (after a reboot or a kill) may belong to any process
        by now; pgserver would take that process for the server. Such a file is removed so
        that a server is started anew (postgres checks its shared memory before starting,
        so no second postmaster can run on one data dir even then).
        """
        path = self.data_dir / _POSTMASTER_PID
        try:
            pid = int(path.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        try:
            process = psutil.Process(pid)
            if not _running(process):
                return None
            if process.name() == "postgres" and Path(process.cwd()).resolve() == self.data_dir:
                return process
        except psutil.NoSuchProcess:
            return None
        except psutil.AccessDenied:
            # Another user's process: not ours to judge; pgserver and postgres decide.
            logger.warning("embedded PostgreSQL: cannot inspect pid %d of %s", pid, path)
            return None
        logger.warning("embedded PostgreSQL: %s names pid %d, not a postgres of %s; removed",
                       path, pid, self.data_dir)  # fmt: skip
        path.unlink(missing_ok=True)
        return None

    def _handles(self) -> list[int]:
        try:
            value = json.loads((self.data_dir / _HANDLES).read_text())
        except (FileNotFoundError, ValueError):
            return []
        return [int(pid) for pid in value] if isinstance(value, list) else []

    def _runtime_dir(self) -> Path:
        path = self.data_dir.parent / "run"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path


def _running(process: psutil.Process) -> bool:
    try:
        # is_running() also checks the PID was not reused; an unreaped zombie has ended.
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _live(pids: list[int]) -> list[int]:
    live = []
    for pid in pids:
        try:
            if _running(psutil.Process(pid)):
                live.append(pid)
        except psutil.NoSuchProcess:
            pass
    return live
