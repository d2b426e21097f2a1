"""Steps the browser tests share: checking a page as it is now, and logging a tab in.

Imports only the test harness (`tests.conftest`, `tests.web.browser`), never a test module.
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page

from tests.conftest import PASSWORD
from tests.web.browser import Tab


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
