"""Joining a chat room: what the fast path keeps of the rules and the room."""

from __future__ import annotations

import pytest
from aiohttp import WSServerHandshakeError

from livecore.chat.room import Outbox
from tests.chat.conftest import connect, stream, user
from tests.conftest import Client, bearer


async def test_a_stream_made_subscriber_only_refuses_the_next_anonymous_join(
    client: Client,
) -> None:
    owner = await user(client, "owner", creator=True)
    await stream(client, owner["token"])
    first = await connect(client, "room-one")  # the stream is now read and remembered
    resp = await client.patch(
        "/api/v1/streams/room-one", json={"visibility": "subscribers"},
        headers=bearer(owner["token"]),
    )  # fmt: skip
    assert resp.status == 200, await resp.text()
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect("/ws/room-one")
    assert refused.value.status == 403
    await first.close()


async def test_a_stream_made_on_this_node_can_be_joined_at_once(client: Client) -> None:
    owner = await user(client, "owner", creator=True)
    with pytest.raises(WSServerHandshakeError) as missing:
        await client.ws_connect("/ws/room-one")  # remembered as missing
    assert missing.value.status == 404
    await stream(client, owner["token"])
    viewer = await connect(client, "room-one")
    assert viewer.hello["user"] is None
    await viewer.close()


async def test_a_socket_told_to_close_calls_its_handler_once_and_none_after_it_is_done() -> None:
    told: list[str] = []
    outbox = Outbox(None, 1024, None, "a127.0.0.1")
    outbox.on_close = lambda: told.append("close")
    outbox.shut(b"suspended")
    outbox.abandon()  # already told: no second close
    assert told == ["close"] and outbox.closed.is_set()
    done = Outbox(None, 1024, None, "a127.0.0.1")
    done.on_close = lambda: told.append("late")
    done.finish()  # the handler ended first
    done.abandon()
    assert told == ["close"]
