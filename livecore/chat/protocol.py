"""The chat socket's wire protocol: the frames the server sends and the ones it reads.

JSON text frames. The server sends arrays of events, one array per tick. The first array
holds `hello` (the user, the room mode and the recent history). Clients send objects:
`{"type": "chat", "text": "...", "nonce": "..."}` (answered by an `ack` with the event id,
or an `error` with a code, each carrying the nonce), `{"type": "ping"}` (answered by
`pong`), and `{"type": "auth", "token": "..."}` for clients without the session cookie.

Plain functions over bytes and dicts: the socket (`socket_routes.py`) does the I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CLOSE_TOO_SLOW = 1013
CLOSE_POLICY = 1008
CLOSE_UNSUPPORTED = 1003


def frame(*objects: dict[str, Any]) -> bytes:
    """One frame: the objects as a JSON array."""
    return json.dumps(list(objects), separators=(",", ":"), ensure_ascii=False).encode()


def error(
    code: str, message: str, nonce: str | None = None, retry_after_s: float | None = None
) -> bytes:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if nonce is not None:
        body["nonce"] = nonce
    if retry_after_s is not None:
        body["retry_after_s"] = round(retry_after_s, 1)
    return frame(body)


def hello(user: dict[str, Any] | None, room_mode: dict[str, object], history: list[bytes]) -> bytes:
    """The first frame of a socket: who it is, the room's mode and the recent events."""
    head_object = {"type": "hello", "user": user, "room_mode": room_mode}
    # History bodies are pre-encoded JSON: spliced in, not decoded and encoded again.
    head = json.dumps(head_object, separators=(",", ":"), ensure_ascii=False)[:-1].encode()
    return b"[" + head + b',"history":[' + b",".join(history) + b"]}]"


class BadFrame(Exception):
    """A client frame that is not a message; `answer` is the error frame to send back."""

    def __init__(self, answer: bytes) -> None:
        super().__init__(answer.decode())
        self.answer = answer


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """A client frame that parsed: its type, nonce (if any) and the whole object."""

    kind: str
    nonce: str | None
    data: dict[str, Any]


def parse(raw: str) -> ClientMessage:
    """Read a client's text frame; BadFrame when it is not a JSON object with a type, or
    its nonce is not a short string."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadFrame(error("bad_json", "frames must be JSON")) from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise BadFrame(error("bad_message", "frames must be objects with a type"))
    nonce = data.get("nonce")
    if nonce is not None and (not isinstance(nonce, str) or len(nonce) > 64):
        raise BadFrame(error("bad_message", "nonce must be a string of at most 64"))
    return ClientMessage(data["type"], nonce, data)
