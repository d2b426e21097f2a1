"""The embedded PostgreSQL (pgserver) used when no database_url is configured.

pgserver listens on a Unix socket only (never on a TCP address). Starting and stopping are
blocking calls: run them before the event loop starts or in a thread.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL server living in `data_dir`, owned by this process until stop()."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return its DSN."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # pgserver keeps its lock file in the user's runtime dir; a headless machine may have
        # no XDG_RUNTIME_DIR, for which platformdirs warns: give it one under data_dir.
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self._runtime_dir()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            # pgserver re-exports get_server without declaring it public.
            self._server = pgserver.get_server(  # type: ignore[attr-defined]
                self.data_dir, cleanup_mode="stop"
            )
        dsn: str = self._server.get_uri()
        logger.info("embedded PostgreSQL running in %s", self.data_dir)
        return dsn

    def pid(self) -> int | None:
        if self._server is None:
            return None
        pid = self._server.get_pid()
        return int(pid) if pid is not None else None

    def stop(self) -> None:
        """Stop the server if this process is its last user."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            logger.info("embedded PostgreSQL stopped")

    def _runtime_dir(self) -> Path:
        path = self.data_dir.parent / "run"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path
