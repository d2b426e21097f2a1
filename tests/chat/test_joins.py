"""Joining a chat room: what the fast path keeps of the rules and the room."""

from __future__ import annotations

import pytest
from aiohttp import WSServerHandshakeError

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
