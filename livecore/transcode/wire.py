"""The messages between a transcoder and its worker process, over `procpipes` framing.

To the worker: one message per video unit, `UNIT` (pts, keyframe) then the access unit; an
empty message ends the input. Back: `READY` once the decoder is open, one `DONE` per unit in
(with the frames it made, maybe none), `FLUSHED` with the last frames at the end, or `ERROR`.

May import: transcode/.
"""

from __future__ import annotations

import struct

from livecore.transcode.spec import EncodedFrame

# Frames: "!qB" (pts, keyframe) then the data. Messages back: one per input unit.
UNIT = struct.Struct("!qB")
COUNT = struct.Struct("!H")
PACKET = struct.Struct("!qBI")
READY, DONE, FLUSHED, ERROR = b"R", b"D", b"F", b"E"


def unpack_frames(body: memoryview) -> list[EncodedFrame]:
    (count,) = COUNT.unpack_from(body)
    offset = COUNT.size
    frames: list[EncodedFrame] = []
    for _ in range(count):
        pts, key, size = PACKET.unpack_from(body, offset)
        offset += PACKET.size
        frames.append(EncodedFrame(pts, bool(key), bytes(body[offset : offset + size])))
        offset += size
    return frames


def pack_frames(kind: bytes, frames: list[EncodedFrame]) -> bytes:
    parts = [kind, COUNT.pack(len(frames))]
    for f in frames:
        parts += [PACKET.pack(f.pts, f.keyframe, len(f.data)), f.data]
    return b"".join(parts)
