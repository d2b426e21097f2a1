"""The packaging process: the workers of the broadcasts it hosts (see packaging.py).

Messages from the parent: b"O" + pickle((id, WorkerSpec)) opens a broadcast; b"U" + UNIT_HEAD
+ codec name + data is one unit; b"E" + UNIT_HEAD (id only) ends one; an empty message (or
the parent's end of the pipe closing) ends them all and then the process. Back to the parent:
pickle((id, units taken so far, event)) for every event of every worker.

Imports hls.worker (and through it PyAV) only in the child; the parent imports UNIT_HEAD.
The process calls itself PROCESS_NAME (Linux: what ps and top show), so an operator can tell
it from the other workers (renditions' transcoders, thumbnails).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import signal
import struct
from multiprocessing.connection import Connection
from pathlib import Path

from livecore.sfu.media import MediaUnit

logger = logging.getLogger(__name__)

# id, pts, clock_hz, is video, is keyframe, queued at (time.monotonic), codec name length
UNIT_HEAD = struct.Struct("!Iqi??dB")
PROCESS_NAME = "lc-packaging"  # at most 15 bytes: the kernel's limit


def host_main(inbox: Connection, outbox: Connection) -> None:
    """One thread feeds every worker of this process in turn: a unit is packaged as soon as
    it arrives, with no hand-off between threads (each costs a wake-up and a GIL switch)."""
    # Ctrl-C reaches the whole process group; the parent decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # not Linux: keeps the interpreter's name
        Path("/proc/self/comm").write_text(PROCESS_NAME)
    from livecore.hls.worker import Worker, WorkerEvent, WorkerSpec

    workers: dict[int, Worker] = {}

    def open_worker(sid: int, spec: WorkerSpec) -> None:
        worker: Worker

        def emit(event: WorkerEvent) -> None:
            # OSError: the parent is gone; the worker still finishes its files.
            with contextlib.suppress(OSError):
                outbox.send_bytes(pickle.dumps((sid, worker.consumed, event)))

        worker = workers[sid] = Worker(spec, emit)
        worker.open()

    try:
        while True:
            message = inbox.recv_bytes()
            if not message:
                break
            kind = message[:1]
            if kind == b"U":
                sid, pts, clock, video, key, queued_at, n = UNIT_HEAD.unpack_from(message, 1)
                start = 1 + UNIT_HEAD.size
                target = workers.get(sid)
                if target is not None:
                    codec = message[start : start + n].decode()
                    unit = MediaUnit("video" if video else "audio", codec,
                                     message[start + n :], pts, clock, key)  # fmt: skip
                    target.feed(unit, queued_at)
            elif kind == b"O":
                open_worker(*pickle.loads(message[1:]))
            elif kind == b"E":
                ended = workers.pop(UNIT_HEAD.unpack_from(message, 1)[0], None)
                if ended is not None:
                    ended.finish()
    except (EOFError, OSError):
        pass  # the parent is gone: finish what we hold
    finally:
        for remaining in workers.values():
            remaining.finish()
