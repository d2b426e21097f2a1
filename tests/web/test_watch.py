"""The home and watch pages in headless Chromium, fed by a real aiortc publisher over WHIP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import expect

from livecore.app import create_app
from livecore.config import Config
from tests.conftest import Client, bearer, register, wait_state
from tests.media import clip
from tests.rtc import Publication, publish
from tests.web.browser import Chromium

# The watch page looks at the stream's state every 5 s (at once when playback stops).
POLL_WAIT_MS = 10_000


def _hls_wired() -> bool:
    """Whether the app factory registers the HLS routes (nothing is started or connected)."""
    app = create_app(Config(), database_url="postgresql://unused.invalid/livecore")
    return any(r.canonical.startswith("/hls/") for r in app.router.resources())


async def _streams(client: Client, *slugs_and_titles: tuple[str, str]) -> dict[str, str]:
    creator = await register(client, "host@example.com", creator=True, display_name="Host")
    keys = {}
    for slug, title in slugs_and_titles:
        resp = await client.post(
            "/api/v1/streams", json={"slug": slug, "title": title}, headers=bearer(creator["token"])
        )
        assert resp.status == 201, await resp.text()
        keys[slug] = (await resp.json())["stream_key"]
    return keys


@asynccontextmanager
async def _live(client: Client, slug: str, key: str) -> AsyncIterator[Publication]:
    """Publish the test clip to `slug` until the block ends, then end the broadcast."""
    pub = await publish(client.session, str(client.make_url(f"/whip/{slug}")), key, clip())
    try:
        await wait_state(client, slug, "live")
        yield pub
    finally:
        await client.delete(pub.location)
        await pub.close()


async def test_home_lists_live_streams_and_watch_shows_their_state(
    client: Client, chromium: Chromium
) -> None:
    keys = await _streams(client, ("on-air", "On air"), ("off-air", "Off air"))
    async with (
        _live(client, "on-air", keys["on-air"]),
        chromium.tab(str(client.make_url("/"))) as tab,
    ):
        page = tab.page
        await page.goto("/")
        cards = page.locator("#streams a")
        await expect(cards).to_have_count(1)
        await expect(cards).to_contain_text("On air")
        await expect(cards).to_contain_text("Host")
        await expect(page.get_by_role("link", name="Studio").first).to_have_attribute(
            "href", "/studio"
        )

        await cards.click()
        await expect(page).to_have_url(re.compile(r"/watch/on-air$"))
        await expect(page.locator("#title")).to_have_text("On air")
        await expect(page.locator("#state")).to_have_text("live")
        await expect(page).to_have_title("On air — livecore")

        await page.goto("/watch/off-air")
        await expect(page.locator("#title")).to_have_text("Off air")
        await expect(page.locator("#state")).to_have_text("offline")
        await expect(page.locator("#message")).to_have_text("This stream is offline.")

        await page.goto("/watch/nobody-here")
        await expect(page.locator("#message")).to_have_text("There is no such stream.")
        assert not tab.csp_violations(), tab.console_errors


@pytest.mark.skipif(not _hls_wired(), reason="the app has no /hls/ routes yet")
async def test_watch_page_plays_the_live_stream_with_hls_js(
    client: Client, chromium: Chromium
) -> None:
    keys = await _streams(client, ("hls-show", "HLS show"))
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        video = page.locator("#video")
        async with _live(client, "hls-show", keys["hls-show"]):
            await page.goto("/watch/hls-show")
            await expect(page.locator("#state")).to_have_text("live")
            await page.wait_for_function(
                "() => document.getElementById('video').currentTime > 1", timeout=30_000
            )
            # Media Source Extensions through hls.js, not the browser's own HLS.
            assert await page.evaluate("() => typeof window.Hls") == "function"
            assert (await video.evaluate("v => v.currentSrc")).startswith("blob:")
            before = await video.evaluate("v => v.currentTime")
            await asyncio.sleep(1.5)
            after = await video.evaluate("v => v.currentTime")
            assert after > before + 0.5, (before, after)
        # The broadcast ended: the page says so at its next look at the stream.
        offline = page.locator("#message")
        await expect(offline).to_have_text("This stream is offline.", timeout=POLL_WAIT_MS)
        await expect(page.locator("#state")).to_have_text("offline")
        assert not tab.csp_violations(), tab.console_errors
