"""The home and watch pages in headless Chromium, fed by a real aiortc publisher over WHIP."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.conftest import Client, create_stream, register
from tests.support.rtc import publishing
from tests.web.browser import Chromium
from tests.web.steps import hls_wired, log_in, playing, thumbnail_made

# The watch page looks at the stream's state every 5 s (at once when playback stops).
POLL_WAIT_MS = 10_000


async def _streams(client: Client, *slugs_and_titles: tuple[str, str]) -> dict[str, str]:
    creator = await register(client, "host@example.com", creator=True, display_name="Host")
    keys = {}
    for slug, title in slugs_and_titles:
        keys[slug] = await create_stream(client, creator["token"], slug, title=title)
    return keys


async def test_home_lists_live_streams_and_watch_shows_their_state(
    client: Client, chromium: Chromium
) -> None:
    keys = await _streams(client, ("on-air", "On air"), ("off-air", "Off air"))
    async with (
        publishing(client, "on-air", keys["on-air"]),
        chromium.tab(str(client.make_url("/"))) as tab,
    ):
        page = tab.page
        await thumbnail_made(client, "on-air")
        await page.goto("/")
        cards = page.locator("#streams a")
        await expect(cards).to_have_count(1)
        await expect(cards).to_contain_text("On air")
        await expect(cards).to_contain_text("Host")
        # The card shows the stream's latest thumbnail (a JPEG the browser decoded).
        thumb = cards.locator("img.thumb")
        await expect(thumb).to_have_attribute(
            "src", re.compile(r"^/hls/on-air/thumb\.jpg\?at=\d+$")
        )
        await page.wait_for_function(
            "() => document.querySelector('#streams img.thumb')?.naturalWidth > 0"
        )
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


@pytest.mark.skipif(not hls_wired(), reason="the app has no /hls/ routes yet")
async def test_watch_page_plays_the_live_stream_with_hls_js(
    client: Client, chromium: Chromium
) -> None:
    keys = await _streams(client, ("hls-show", "HLS show"))
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        video = page.locator("#video")
        async with publishing(client, "hls-show", keys["hls-show"]):
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


async def _recordings(client: Client, slug: str) -> list[dict[str, Any]]:
    """The stream's recordings, once its last broadcast is listed (packaging finishes it)."""
    async with asyncio.timeout(30):
        while True:
            body = await (await client.get(f"/api/v1/streams/{slug}/recordings")).json()
            if body["recordings"]:
                return list(body["recordings"])
            await asyncio.sleep(0.2)


@pytest.mark.skipif(not hls_wired(), reason="the app has no /hls/ routes yet")
async def test_watch_page_lists_past_broadcasts_and_plays_one_as_vod(
    client: Client, chromium: Chromium
) -> None:
    keys = await _streams(client, ("vod-show", "VOD show"))
    async with publishing(client, "vod-show", keys["vod-show"]):
        await asyncio.sleep(5)  # two or more complete segments
    (recording,) = await _recordings(client, "vod-show")
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        video = page.locator("#video")
        await page.goto("/watch/vod-show")
        await expect(page.locator("#state")).to_have_text("offline")
        await expect(page.locator("#message")).to_have_text("This stream is offline.")
        items = page.locator("#recording-list button")
        await expect(items).to_have_count(1)
        await items.first.click()
        await playing(page)
        await expect(page.locator("#message")).to_be_hidden()
        duration = await video.evaluate("v => v.duration")
        assert math.isfinite(duration) and duration > 3, duration  # VOD: its whole length
        assert (await video.evaluate("v => v.currentSrc")).startswith("blob:")  # hls.js
        await expect(items.first).to_have_attribute("aria-current", "true")
        assert f"recording={recording['id']}" in page.url  # the address can be shared

        await page.goto(f"/watch/vod-show?recording={recording['id']}")
        await playing(page, 0.5)
        async with publishing(client, "vod-show", keys["vod-show"]):
            # The recording keeps playing when the stream goes live; one click goes to live.
            back = page.locator("#back-to-live")
            await expect(back).to_be_visible(timeout=POLL_WAIT_MS)
            async with page.expect_request(lambda r: "/hls/vod-show/" in r.url):
                await back.click()  # the live stream's playlist is asked for
            await expect(back).to_be_hidden()
            assert "recording=" not in page.url
            await playing(page, 0.5)
        await page.goto("/watch/vod-show?recording=999999")
        await expect(page.locator("#message")).to_have_text("That recording is no longer kept.")
        assert not tab.csp_violations(), tab.console_errors


@pytest.mark.skipif(not hls_wired(), reason="the app has no /hls/ routes yet")
async def test_subscriber_only_stream_plays_with_a_token_for_those_allowed(
    client: Client, chromium: Chromium
) -> None:
    host = await register(client, "host@example.com", creator=True, display_name="Host")
    await register(client, "fan@example.com", display_name="Fan")
    key = await create_stream(client, host["token"], "club", title="Club", visibility="subscribers")
    message = "#message"
    async with publishing(client, "club", key):
        async with chromium.tab(str(client.make_url("/"))) as tab:
            page = tab.page
            await page.goto("/watch/club")
            await expect(page.locator(message)).to_have_text(
                "This stream is for subscribers: log in to watch."
            )
            await log_in(page, "fan@example.com", start=None)  # not a subscriber (none can be yet)
            await page.goto("/watch/club")
            await expect(page.locator(message)).to_have_text("This stream is for its subscribers.")
            assert not tab.csp_violations(), tab.console_errors

        async with chromium.tab(str(client.make_url("/"))) as tab:
            page = tab.page
            hls_urls: list[str] = []
            page.on("request", lambda r: hls_urls.append(r.url) if "/hls/club/" in r.url else None)
            await page.goto("/")
            await log_in(page, "host@example.com", start=None)  # the owner may watch
            await page.goto("/watch/club")
            await playing(page)
            assert hls_urls and all("token=" in url for url in hls_urls), hls_urls
            assert not tab.csp_violations(), tab.console_errors
