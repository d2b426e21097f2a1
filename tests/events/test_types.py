"""Each event kind's JSON, as viewers' sockets, stored history and web/static/chat.js read it:
the keys and their order are part of the protocol. Both encodings (the in-process bus's, and
the Redis bus's head and tail around the id) give the same bytes."""

from __future__ import annotations

import pytest

from livecore.events.types import (
    ChatDeleted,
    ChatLine,
    RoomEvent,
    RoomMode,
    Speaker,
    StreamMedia,
    StreamState,
    TipSent,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
    ViewerCount,
    encode_event,
    split_event,
)

ENVELOPE = '"id":42,"room":7,"ts":1700000000.123'
CASES: list[tuple[RoomEvent, str]] = [
    (
        ChatLine(Speaker(3, "Zoë ✨", ("owner", "subscriber")), "hé <b>"),
        '{"type":"chat",%s,"user":{"id":3,"name":"Zoë ✨","badges":["owner","subscriber"]},'
        '"text":"hé <b>"}',
    ),
    (ChatDeleted(41), '{"type":"chat_deleted",%s,"message_id":41}'),
    (
        UserTimedOut(5, 1700000600.5, 600),
        '{"type":"user_timed_out",%s,"user_id":5,"until":1700000600.5,"seconds":600}',
    ),
    (UserBanned(5), '{"type":"user_banned",%s,"user_id":5}'),
    (UserUnbanned(5), '{"type":"user_unbanned",%s,"user_id":5}'),
    (
        RoomMode(30, True, False, 500, 2),
        '{"type":"room_mode",%s,"slow_mode_s":30,"subscribers_only":true,'
        '"links_allowed":false,"max_length":500,"banned_terms_count":2}',
    ),
    (ViewerCount(1234), '{"type":"viewer_count",%s,"count":1234}'),
    (StreamState("live"), '{"type":"stream_state",%s,"state":"live"}'),
    (
        StreamState("offline", StreamMedia("h264", 1280, None)),
        '{"type":"stream_state",%s,"state":"offline","video_codec":"h264","width":1280,'
        '"height":null}',
    ),
    (
        TipSent(9, 500, "EUR", "merci ❤", True, 3, "Zoë"),
        '{"type":"tip",%s,"tip_id":9,"amount_minor":500,"currency":"EUR","message":"merci ❤",'
        '"test_mode":true,"user":{"id":3,"name":"Zoë"}}',
    ),
]


@pytest.mark.parametrize(("event", "expected"), CASES, ids=lambda c: getattr(c, "kind", ""))
def test_each_kind_encodes_to_the_same_bytes_on_both_buses(event: RoomEvent, expected: str) -> None:
    body = (expected % ENVELOPE).encode()
    assert encode_event(7, 42, 1700000000.1234, event) == body
    head, tail = split_event(7, 1700000000.1234, event)
    assert f"{head}42{tail}".encode() == body
