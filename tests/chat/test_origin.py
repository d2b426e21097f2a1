"""Cross-site WebSocket hijacking: the session cookie authenticates a chat socket only when
the page that opened it is this deployment's own; other sites' pages get an anonymous socket.
Bearer and first-message authentication do not depend on the page."""

from __future__ import annotations

from typing import Any

from tests.chat.conftest import Viewer, stream
from tests.conftest import Client, MakeClient, bearer, register


async def cookie_viewer(client: Client) -> dict[str, Any]:
    """Stream "room-one", and a viewer whose session cookie is in the client's jar."""
    owner = await register(client, "owner@example.com", creator=True)
    await stream(client, owner["token"])
    client.session.cookie_jar.clear()
    return await register(client, "viewer@example.com", display_name="Vic")


async def connect(
    client: Client, origin: str | None, headers: dict[str, str] | None = None
) -> Viewer:
    ws = await client.ws_connect("/ws/room-one", origin=origin, headers=headers or {})
    viewer = Viewer(ws)
    await viewer.wait_for(lambda e: e["type"] == "hello")
    return viewer


def own_origin(client: Client) -> str:
    return f"http://{client.host}:{client.port}"


async def test_cookie_socket_opened_by_another_site_is_anonymous(client: Client) -> None:
    await cookie_viewer(client)
    viewer = await connect(client, "https://evil.example")
    try:
        assert viewer.hello["user"] is None
        refused = await viewer.say("hello from elsewhere", "n1")
        assert refused["type"] == "error" and refused["code"] == "login_required"
    finally:
        await viewer.close()


async def test_cookie_socket_from_a_sandboxed_page_is_anonymous(client: Client) -> None:
    await cookie_viewer(client)
    viewer = await connect(client, "null")
    assert viewer.hello["user"] is None
    await viewer.close()


async def test_cookie_socket_from_another_port_of_this_host_is_anonymous(client: Client) -> None:
    await cookie_viewer(client)
    assert client.port is not None
    viewer = await connect(client, f"http://{client.host}:{client.port + 1}")
    assert viewer.hello["user"] is None
    await viewer.close()


async def test_cookie_socket_from_this_host_is_the_user(client: Client) -> None:
    me = await cookie_viewer(client)
    viewer = await connect(client, own_origin(client))
    try:
        assert viewer.hello["user"]["id"] == me["user"]["id"]
        assert (await viewer.say("hi", "n1"))["type"] == "ack"
    finally:
        await viewer.close()


async def test_cookie_socket_from_the_public_url_is_the_user(make_client: MakeClient) -> None:
    client = await make_client(public_url="https://live.example.com/")
    me = await cookie_viewer(client)
    # An https public_url makes the cookie Secure, which the jar keeps off plain http.
    cookie = {"Cookie": f"livecore_session={me['token']}"}
    # Origins compare without case and without the default port.
    for origin in ("https://live.example.com", "https://LIVE.example.com:443"):
        viewer = await connect(client, origin, cookie)
        assert viewer.hello["user"]["id"] == me["user"]["id"]
        await viewer.close()
    # The same host over plain http is not the deployment's page.
    viewer = await connect(client, "http://live.example.com", cookie)
    assert viewer.hello["user"] is None
    await viewer.close()


async def test_cookie_socket_from_a_trusted_origin_is_the_user(make_client: MakeClient) -> None:
    client = await make_client(trusted_origins=("https://partner.example:8443",))
    me = await cookie_viewer(client)
    viewer = await connect(client, "https://partner.example:8443")
    assert viewer.hello["user"]["id"] == me["user"]["id"]
    await viewer.close()
    viewer = await connect(client, "https://partner.example")
    assert viewer.hello["user"] is None
    await viewer.close()


async def test_cookie_socket_without_origin_is_the_user(client: Client) -> None:
    # Browsers always send Origin; a client that does not is no page acting for anyone.
    me = await cookie_viewer(client)
    viewer = await connect(client, None)
    assert viewer.hello["user"]["id"] == me["user"]["id"]
    await viewer.close()


async def test_bearer_socket_from_another_site_is_the_user(client: Client) -> None:
    me = await cookie_viewer(client)
    client.session.cookie_jar.clear()
    viewer = await connect(client, "https://evil.example", bearer(me["token"]))
    assert viewer.hello["user"]["id"] == me["user"]["id"]
    await viewer.close()


async def test_first_message_auth_from_another_site_is_the_user(client: Client) -> None:
    me = await cookie_viewer(client)
    viewer = await connect(client, "https://evil.example")
    try:
        await viewer.ws.send_json({"type": "auth", "token": me["token"], "nonce": "a1"})
        ack = await viewer.wait_for(lambda e: e.get("nonce") == "a1")
        assert ack["type"] == "ack" and ack["user"]["id"] == me["user"]["id"]
        assert (await viewer.say("hi", "n1"))["type"] == "ack"
    finally:
        await viewer.close()


async def test_anonymous_socket_from_another_site_still_watches(client: Client) -> None:
    owner = await register(client, "owner@example.com", creator=True)
    await stream(client, owner["token"])
    client.session.cookie_jar.clear()
    viewer = await connect(client, "https://elsewhere.example")
    assert viewer.hello["user"] is None
    await viewer.close()
