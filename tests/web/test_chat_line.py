"""The watch page when the node lets chat joins in in turn: a refused viewer reads "You're in
line", politely announced, and the page joins by itself once the advised wait is over, with
no tight loop of attempts."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import WebSocket, expect

from tests.chat.conftest import chat_config, connect, stream, user
from tests.conftest import MakeClient
from tests.web.browser import Chromium
from tests.web.steps import checked


async def test_a_refused_viewer_is_told_they_are_in_line_and_joins_when_advised(
    make_client: MakeClient, chromium: Chromium, shots: Path
) -> None:
    # One join every 5 s, none waiting: a join within 5 s of another is refused (503) with
    # a Retry-After of about 5 s.
    client = await make_client(
        chat=chat_config(admit_per_s=0.2, admit_burst=1, admit_max_wait_s=0.0)
    )
    owner = await user(client, "Host", creator=True)
    await stream(client, owner["token"], "premiere")
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        sockets: list[str] = []

        def opened(ws: WebSocket) -> None:
            sockets.append(ws.url)

        page.on("websocket", opened)
        first = await connect(client, "premiere")  # takes this slot
        await page.goto("/watch/premiere")
        chat = page.get_by_role("region", name="Chat")
        note = chat.get_by_role("status").filter(has_text="You're in line")
        await expect(note).to_be_visible()
        await expect(note).to_have_attribute("aria-live", "polite")
        await expect(note).to_contain_text("Joining again in about")
        assert len(sockets) == 1
        await checked(tab, shots, "watch-in-line")

        # The page comes back by itself once the advised wait is over, and is in.
        await expect(page.locator("#viewers")).to_have_text("2 watching", timeout=20_000)
        await expect(note).to_be_hidden()
        assert len(sockets) == 2  # refused once, admitted once: no loop in between
        await checked(tab, shots, "watch-joined-after-line")
        assert not tab.csp_violations(), tab.console_errors
        await first.close()
