"""Cross-site WebSocket hijacking, in Chromium: a page on another origin opens the chat
socket with the logged-in visitor's cookie and gets an anonymous socket; livecore's own pages
get the visitor's."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.conftest import Client, bearer, register
from tests.web.browser import Chromium

# Opens the chat socket of `url`, tries to post, and answers what the server said.
_CHAT = """
(url) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url);
  const seen = {};
  ws.onerror = () => reject(new Error("socket error"));
  ws.onmessage = (message) => {
    for (const event of JSON.parse(message.data)) {
      if (event.type === "hello") {
        seen.user = event.user;
        ws.send(JSON.stringify({type: "chat", text: "hello from this page", nonce: "n1"}));
      } else if (event.nonce === "n1") {
        seen.answer = event.type === "error" ? event.code : event.type;
        ws.close();
        resolve(seen);
      }
    }
  };
})
"""


async def _other_site(aiohttp_server: AiohttpServer) -> str:
    """Another origin (same host, another port) serving an ordinary page."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>elsewhere</title>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/", page)
    server = await aiohttp_server(app)
    return str(server.make_url("/"))


async def test_another_sites_page_gets_an_anonymous_chat_socket(
    client: Client, chromium: Chromium, aiohttp_server: AiohttpServer
) -> None:
    host = await register(client, "host@example.com", creator=True, display_name="Host")
    resp = await client.post(
        "/api/v1/streams", json={"slug": "room"}, headers=bearer(host["token"])
    )
    assert resp.status == 201
    await register(client, "fan@example.com", display_name="Fan")
    socket_url = str(client.make_url("/ws/room")).replace("http://", "ws://")
    elsewhere = await _other_site(aiohttp_server)

    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await page.goto("/")
        status = await page.evaluate(
            """async () => (await fetch("/api/v1/auth/login", {
                method: "POST", headers: {"Content-Type": "application/json"},
                body: JSON.stringify({email: "fan@example.com", password: "correct horse battery"}),
            })).status"""
        )
        assert status == 200
        # livecore's own page: the cookie is the visitor.
        own: dict[str, Any] = await page.evaluate(_CHAT, socket_url)
        assert own["user"]["name"] == "Fan" and own["answer"] == "ack"
        # Another site's page, same browser, same cookie: anonymous.
        await page.goto(elsewhere)
        foreign: dict[str, Any] = await page.evaluate(_CHAT, socket_url)
        assert foreign == {"user": None, "answer": "login_required"}
