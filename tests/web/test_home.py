"""The home page in headless Chromium: the live grid follows streams going live and offline
and their viewers without a reload, the channels list offline streams with their
recordings, and the search box finds streams by title and by creator name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg
from playwright.async_api import Page, expect

from tests.chat.conftest import FAST_CHAT
from tests.conftest import Client, MakeClient, create_stream, register
from tests.support.rtc import publishing
from tests.web.browser import Chromium
from tests.web.steps import checked

# The grid is looked at again every 5 s; the listing behind it is cached for 1 s.
GRID_WAIT_MS = 15_000


async def _create(client: Client, token: str, slug: str, title: str, **more: Any) -> str:
    return await create_stream(client, token, slug, title=title, **more)


async def _sql(dsn: str, query: str, *args: object) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def _recording(dsn: str, slug: str, minutes_ago: int) -> int:
    """A finished broadcast of `slug` whose recording is listed (the files are not needed
    to list it)."""
    return int(
        await _sql(
            dsn,
            "INSERT INTO broadcasts (stream_id, started_at, ended_at, recording_path,"
            " recording_ready, recording_bytes)"
            " SELECT id, now() - make_interval(mins => $2), now() - make_interval(mins => $2 - 3),"
            " 'rec/x', true, 1000 FROM streams WHERE slug = $1 RETURNING id",
            slug,
            minutes_ago,
        )
    )


def _marked(page: Page) -> Any:
    """A mark on the page's window: gone if the page is ever reloaded."""
    return page.evaluate("() => (window.__notReloaded = true)")


async def test_home_grid_follows_a_live_stream_and_its_viewers_without_reload(
    make_client: MakeClient, chromium: Chromium, shots: Path, dsn: str
) -> None:
    client = await make_client(chat=FAST_CHAT)
    host = await register(client, "host@example.com", creator=True, display_name="Host")
    key = await _create(client, host["token"], "on-air", "Cooking live")
    await _create(client, host["token"], "quiet", "Quiet corner")
    recording = await _recording(dsn, "quiet", 90)
    base = str(client.make_url("/"))
    async with chromium.tab(base) as tab, chromium.tab(base) as viewer:
        page = tab.page
        await page.goto("/")
        live = page.locator("#streams")
        channels = page.get_by_role("region", name="Channels")
        await expect(page.locator("#status")).to_have_text("Nobody is live right now.")
        await expect(
            channels.get_by_role("listitem").filter(has_text="Quiet corner")
        ).to_have_count(1)
        past = channels.get_by_role("link", name=re.compile(r"3 min 0 s$"))
        await expect(past).to_have_attribute("href", f"/watch/quiet?recording={recording}")
        await expect(channels).to_contain_text("Last live 1 hour ago")
        await _marked(page)

        async with publishing(client, "on-air", key):
            card = live.get_by_role("link", name=re.compile("Cooking live"))
            await expect(card).to_be_visible(timeout=GRID_WAIT_MS)
            await expect(card).to_contain_text("Host")
            await expect(card).to_contain_text("0 watching")
            await expect(card).to_contain_text("just started")
            await expect(page.locator("#status")).to_have_text("")
            # The live stream is no longer among the channels (they are looked at again).
            await expect(channels).not_to_contain_text("Cooking live", timeout=GRID_WAIT_MS)
            # Its thumbnail arrives on a later look (the first one is made after a keyframe).
            await page.wait_for_function(
                "() => document.querySelector('#streams img.thumb')?.naturalWidth > 0",
                timeout=30_000,
            )
            await expect(card.locator("img.thumb")).to_have_attribute(
                "src", re.compile(r"^/hls/on-air/thumb\.jpg\?at=\d+$")
            )

            # A viewer opens the stream: the card counts them (the chat socket is how).
            await viewer.page.goto("/watch/on-air")
            await expect(card).to_contain_text("1 watching", timeout=GRID_WAIT_MS)
            await checked(tab, shots, "home-live")
            await viewer.page.goto("about:blank")
            await expect(card).to_contain_text("0 watching", timeout=GRID_WAIT_MS)

        # Offline: the card goes, the stream is a channel again; the page never reloaded.
        await expect(live.get_by_role("link")).to_have_count(0, timeout=GRID_WAIT_MS)
        await expect(page.locator("#status")).to_have_text("Nobody is live right now.")
        await expect(channels).to_contain_text("Cooking live", timeout=GRID_WAIT_MS)
        await expect(channels).to_contain_text("Last live just now")
        assert await page.evaluate("() => window.__notReloaded") is True
        await checked(tab, shots, "home-offline")
        assert not tab.csp_violations(), tab.console_errors


async def test_home_search_finds_streams_by_title_and_by_creator_name(
    client: Client, chromium: Chromium, shots: Path, dsn: str
) -> None:
    ann = await register(client, "ann@example.com", creator=True, display_name="Annabel Lee")
    bob = await register(client, "bob@example.com", creator=True, display_name="Bob_Builder")
    await _create(client, ann["token"], "ann-cooks", "Cooking with Ann")
    await _create(client, ann["token"], "ann-club", "Members' kitchen", visibility="subscribers")
    await _create(client, bob["token"], "bob-builds", "Building a shed, 100% live")
    await _create(client, bob["token"], "bob-talks", "Questions and answers")
    # Live without a publisher: the listing goes by the stored state.
    await _sql(
        dsn,
        "UPDATE streams SET state = 'live', started_at = now() - interval '65 minutes'"
        " WHERE slug IN ('ann-cooks', 'ann-club', 'bob-builds')",
    )
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await page.goto("/")
        live = page.locator("#streams")
        channels = page.get_by_role("region", name="Channels")
        await expect(live.get_by_role("link")).to_have_count(3)
        await expect(live.get_by_role("link").first).to_contain_text("live for 1 h 5 min")
        await expect(live.get_by_role("link", name=re.compile("Members' kitchen"))).to_contain_text(
            "Subscribers only"
        )
        await expect(channels.get_by_role("link", name=re.compile("Questions"))).to_be_visible()
        await checked(tab, shots, "home")
        await page.emulate_media(color_scheme="dark")
        await checked(tab, shots, "home-dark")
        await page.emulate_media(color_scheme="light")
        await _marked(page)

        box = page.get_by_role("searchbox", name="Search")
        await box.fill("cooking")  # by title, whatever the case
        await expect(live.get_by_role("link")).to_have_count(1)
        await expect(live.get_by_role("link")).to_contain_text("Cooking with Ann")
        await expect(channels.get_by_role("listitem")).to_have_count(0)
        await expect(page.locator("#channels-status")).to_have_text("No channel matches “cooking”.")
        await expect(page).to_have_url(re.compile(r"/\?q=cooking$"))

        await box.fill("annabel")  # by creator name: both of Ann's streams
        await expect(live.get_by_role("link")).to_have_count(2)
        await expect(live).to_contain_text("Cooking with Ann")
        await expect(live).to_contain_text("Members' kitchen")

        await box.fill("bob_")  # by creator name, the "_" taken literally
        await expect(live.get_by_role("link")).to_have_count(1)
        await expect(live).to_contain_text("Building a shed")
        await expect(channels.get_by_role("link", name=re.compile("Questions"))).to_be_visible()

        await box.fill("100%")
        await expect(live.get_by_role("link")).to_have_count(1)
        await expect(live).to_contain_text("Building a shed")

        await box.fill("no such show")
        await box.press("Enter")
        await expect(page.locator("#status")).to_have_text("No live stream matches “no such show”.")
        await expect(live.get_by_role("link")).to_have_count(0)
        await checked(tab, shots, "home-search-nothing")

        await box.fill("")
        await expect(live.get_by_role("link")).to_have_count(3)
        await expect(page).to_have_url(re.compile(r"/$"))
        assert await page.evaluate("() => window.__notReloaded") is True

        # A search in the address (a shared link) is run at once and shown in the box.
        await page.goto("/?q=Questions")
        await expect(box).to_have_value("Questions")
        await expect(channels.get_by_role("listitem")).to_have_count(1)
        await expect(live.get_by_role("link")).to_have_count(0)
        assert not tab.csp_violations(), tab.console_errors
