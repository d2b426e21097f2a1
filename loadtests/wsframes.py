"""What the load generators' lean chat clients (bench_chat, bench_join, the premiere) read:
the answer to their WebSocket upgrade, and server frames (RFC 6455, never masked)."""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True, slots=True)
class UpgradeAnswer:
    """The server's answer to a WebSocket upgrade: 101, or a refusal (its Retry-After, if any),
    and the bytes after its head (the first frames)."""

    status: int
    retry_after_s: float | None
    rest: bytes


def upgrade_answer(data: bytes) -> UpgradeAnswer | None:
    """The answer at the start of `data`, or None while its head is incomplete."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    retry = None
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "retry-after":
            try:
                retry = float(value.strip())
            except ValueError:
                retry = None
    return UpgradeAnswer(status, retry, data[end + 4 :])
