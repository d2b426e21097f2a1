"""Server-to-client WebSocket frames (RFC 6455, never masked) cut out of received bytes, for
the load generators' lean chat clients (bench_chat, the premiere)."""

from __future__ import annotations


def server_frames(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The complete frames at the start of `data` as (opcode, payload), and how many bytes
    they took (the rest is an incomplete frame to keep for the next read)."""
    frames: list[tuple[int, bytes]] = []
    pos, n = 0, len(data)
    while n - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        length, head = b1 & 0x7F, 2
        if length == 126:
            if n - pos < 4:
                break
            length, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            if n - pos < 10:
                break
            length, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
        end = pos + head + length
        if end > n:
            break
        frames.append((b0 & 0x0F, data[pos + head : end]))
        pos = end
    return frames, pos
