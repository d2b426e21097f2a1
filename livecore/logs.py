"""Logging set-up: human-readable text or one JSON object per line, written off the loop.

Records are handed to a bounded queue and formatted and written by one background thread,
so a slow or blocked stderr never stalls the event loop. When that queue is full, records
are dropped and counted rather than blocking.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import sys
from datetime import UTC, datetime
from typing import Literal

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# The request log passes its fields as the message arguments, in this order; the JSON
# format names them (building an `extra` dict per request would cost every request).
REQUEST_LOGGER = "livecore.request"
REQUEST_FIELDS = ("request_id", "method", "path", "status", "duration_ms")
QUEUE_RECORDS = 10_000


class JsonFormatter(logging.Formatter):
    def __init__(self, tag: str = "") -> None:
        super().__init__()
        self._tag = {"proc": tag} if tag else {}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            **self._tag,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.name == REQUEST_LOGGER and isinstance(record.args, tuple):
            out.update(zip(REQUEST_FIELDS, map(str, record.args), strict=False))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class _QueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are: formatting happens there."""

    dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.exc_info:
            # Tracebacks hold frames that may change after this returns: render them now.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            _QueueHandler.dropped += 1


_listener: logging.handlers.QueueListener | None = None


def configure_logging(level: str, fmt: Literal["text", "json"], *, tag: str = "") -> None:
    """`tag` names the process in every line when several write to one log (p1, p2, main)."""
    global _listener  # the process's one logging thread, started once here
    if _listener is not None:
        _listener.stop()
    # Per-record work livecore's formats never show (the logging HOWTO's "Optimization").
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    stream = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        stream.setFormatter(JsonFormatter(tag))
    else:
        name = f"%(name)s[{tag}]" if tag else "%(name)s"
        stream.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {name}: %(message)s"))
    records: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_RECORDS)
    root = logging.getLogger()
    root.handlers[:] = [_QueueHandler(records)]
    root.setLevel(level.upper())
    _listener = logging.handlers.QueueListener(records, stream)
    _listener.start()
    atexit.register(_listener.stop)  # flushes what is queued
    # aiohttp's own access log is replaced by livecore's request log (ops/routes.py).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
