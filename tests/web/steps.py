"""Steps the browser tests share: checking a page as it is now, logging a tab in, waiting
for the player to play.

Imports no test module: test modules import it.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from playwright.async_api import Page

from livecore.app import create_app
from livecore.config import Config
from tests.conftest import PASSWORD, Client
from tests.web.browser import Tab

# A random (version 4) UUID, as the pages make for each Idempotency-Key.
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def hls_wired() -> bool:
    """Whether the app factory registers the HLS routes (nothing is started or connected)."""
    app = create_app(Config(), database_url="postgresql://unused.invalid/livecore")
    return any(r.canonical.startswith("/hls/") for r in app.router.resources())


async def checked(tab: Tab, shots: Path, name: str) -> None:
    """Screenshot the page (desktop and 375 px) and require no serious axe violation."""
    await tab.snapshot(shots, name)
    assert await tab.axe() == [], name


async def log_in(page: Page, email: str, *, start: str | None = "/") -> None:
    """Log the page's browser context in through the API, from `start` (None: where it is).

    The session cookie lands in the context, so every later page of it is logged in.
    """
    if start is not None:
        await page.goto(start)
    status = await page.evaluate(
        """async ([email, password]) => (await fetch("/api/v1/auth/login", {
            method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify({email, password}),
        })).status""",
        [email, PASSWORD],
    )
    assert status == 200


async def playing(page: Page, past_s: float = 1.0) -> None:
    """Wait until the watch page's video has played past `past_s` seconds."""
    await page.wait_for_function(
        f"() => document.getElementById('video').currentTime > {past_s}", timeout=30_000
    )


async def thumbnail_made(client: Client, slug: str) -> None:
    """Wait until the live stream's first thumbnail is served (the home grid and the review
    queue show it)."""
    async with asyncio.timeout(30):
        while True:
            if (await client.get(f"/hls/{slug}/thumb.jpg")).status == 200:
                return
            await asyncio.sleep(0.2)
