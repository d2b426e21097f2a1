"""The packaging process: one worker thread per broadcast it hosts (see packaging.py).

Messages from the parent: b"O" + pickle((id, WorkerSpec)) opens a broadcast; b"U" + UNIT_HEAD
+ codec name + data is one unit; b"E" + UNIT_HEAD (id only) ends one; an empty message (or
the parent's end of the pipe closing) ends them all and then the process. Back to the parent:
pickle((id, units taken so far, event)) for every event of every worker.

Imports hls.worker (and through it PyAV) only in the child; the parent imports UNIT_HEAD.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import queue
import signal
import struct
import threading
from multiprocessing.connection import Connection

from livecore.sfu.media import MediaUnit

logger = logging.getLogger(__name__)

# id, pts, clock_hz, is video, is keyframe, queued at (time.monotonic), codec name length
UNIT_HEAD = struct.Struct("!Iqi??dB")


def host_main(inbox: Connection, outbox: Connection) -> None:
    # Ctrl-C reaches the whole process group; the parent decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from livecore.hls.worker import QueueItem, Worker, WorkerEvent, WorkerSpec

    send_lock = threading.Lock()
    inboxes: dict[int, queue.SimpleQueue[QueueItem | None]] = {}
    threads: list[threading.Thread] = []

    def open_worker(sid: int, spec: WorkerSpec) -> None:
        worker: Worker

        def emit(event: WorkerEvent) -> None:
            data = pickle.dumps((sid, worker.consumed, event))
            # OSError: the parent is gone; the worker still finishes its files.
            with send_lock, contextlib.suppress(OSError):
                outbox.send_bytes(data)

        worker = Worker(spec, emit)
        threads[:] = [t for t in threads if t.is_alive()]
        inbox: queue.SimpleQueue[QueueItem | None] = queue.SimpleQueue()
        inboxes[sid] = inbox
        thread = threading.Thread(target=worker.run, args=(inbox,), name=f"hls-{spec.slug}")
        thread.start()
        threads.append(thread)

    try:
        while True:
            message = inbox.recv_bytes()
            if not message:
                break
            kind = message[:1]
            if kind == b"U":
                sid, pts, clock, video, key, queued_at, n = UNIT_HEAD.unpack_from(message, 1)
                start = 1 + UNIT_HEAD.size
                target = inboxes.get(sid)
                if target is not None:
                    codec = message[start : start + n].decode()
                    unit = MediaUnit("video" if video else "audio", codec,
                                     message[start + n :], pts, clock, key)  # fmt: skip
                    target.put((unit, queued_at))
            elif kind == b"O":
                open_worker(*pickle.loads(message[1:]))
            elif kind == b"E":
                ended = inboxes.pop(UNIT_HEAD.unpack_from(message, 1)[0], None)
                if ended is not None:
                    ended.put(None)
    except (EOFError, OSError):
        pass  # the parent is gone: finish what we hold
    finally:
        for remaining in inboxes.values():
            remaining.put(None)
        for thread in threads:
            thread.join()
