"""The watch page when someone ends the broadcast: viewers read who ended it and why."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
from playwright.async_api import expect

from tests.conftest import Client, bearer, create_stream, register, wait_state
from tests.support import media
from tests.support.rtc import publish
from tests.web.browser import Chromium
from tests.web.steps import checked, log_in, playing


async def test_watch_page_says_who_ended_the_broadcast_and_why(
    client: Client, chromium: Chromium, shots: Path
) -> None:
    host = await register(client, "host@example.com", creator=True, display_name="Host")
    key = await create_stream(client, host["token"], "on-air", title="On air")
    url = str(client.make_url("/whip/on-air"))
    pub = await publish(client.session, url, key, media.clip())
    try:
        await wait_state(client, "on-air", "live")
        async with chromium.tab(str(client.make_url("/"))) as tab:
            page = tab.page
            await page.goto("/watch/on-air")
            await playing(page, 0.5)
            # The chat socket is open (its panel lets a visitor read along).
            await expect(page.get_by_role("region", name="Chat")).to_be_visible()
            resp = await client.post(
                "/api/v1/streams/on-air/end",
                json={"reason": "Technical trouble, back in ten minutes"},
                headers=bearer(host["token"]),
            )
            assert resp.status == 202, await resp.text()
            said = page.get_by_role("status").filter(has_text="This broadcast was ended")
            await expect(said).to_have_text(
                "This broadcast was ended by the creator: Technical trouble, back in ten minutes"
            )
            # It stays when the stream's own offline state follows.
            await wait_state(client, "on-air", "offline")
            await expect(page.locator("#state")).to_have_text("offline")
            await expect(said).to_be_visible()
            await checked(tab, shots, "watch-ended")
    finally:
        await pub.close()


async def test_the_studio_lets_moderators_end_and_says_the_platform_ended_the_broadcast(
    client: Client, dsn: str, chromium: Chromium, shots: Path
) -> None:
    host = await register(client, "cam@example.com", creator=True, display_name="Cam")
    await create_stream(client, host["token"], "cam-show", title="Camera show")
    root = await register(client, "root@example.com", display_name="Root")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1", root["user"]["id"])
    finally:
        await conn.close()
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await log_in(page, "cam@example.com", start="/studio")
        await page.goto("/studio")
        await expect(page.locator("#selected-title")).to_have_text("Camera show")
        # The owner lets the stream's moderators end its broadcasts (off until then).
        may_end = page.get_by_role("checkbox", name="Moderators may end a broadcast")
        await expect(may_end).not_to_be_checked()
        await may_end.check()
        await page.get_by_role("button", name="Save").click()
        await expect(page.locator("#status")).to_have_text("Saved.")
        resp = await client.get(
            "/api/v1/streams/cam-show/end-settings", headers=bearer(host["token"])
        )
        assert await resp.json() == {"moderators_may_end": True}
        await page.reload()
        await expect(may_end).to_be_checked()
        await page.get_by_role("button", name="Go live").click()
        await expect(page.locator("#status")).to_have_text("Live on cam-show (H.264).")
        await wait_state(client, "cam-show", "live")
        resp = await client.post(
            "/api/v1/streams/cam-show/end",
            json={"reason": "Terms of service, 4.2", "block_for_s": 3600},
            headers=bearer(root["token"]),
        )
        assert resp.status == 202, await resp.text()
        await expect(page.locator("#status")).to_have_text(
            "This broadcast was ended by the platform: Terms of service, 4.2"
        )
        await wait_state(client, "cam-show", "offline")
        # Going live again is refused, with the reason and the block's end.
        await page.get_by_role("button", name="Go live").click()
        await expect(page.get_by_role("alert")).to_have_text(
            re.compile(r"^publishing is blocked until [0-9T:-]+\+00:00: Terms of service, 4\.2$")
        )
        await expect(page.locator("#status")).to_have_text("")
        await checked(tab, shots, "studio-ended-and-blocked")
