"""What an account reads of admins' decisions, in headless Chromium: a creator request's
state on the account page, and a suspension's reason and end on the account page and the
login page (axe-core clean, screenshots at desktop width and 375 px)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import expect

from livecore.config import Config
from livecore.store import Database
from tests.admin.accounts import admin, suspend
from tests.conftest import MakeClient, bearer, register
from tests.web.browser import Chromium
from tests.web.steps import checked, log_in


async def test_the_account_page_shows_the_creator_request_and_its_decision(
    make_client: MakeClient, config: Config, db: Database, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(auth=replace(config.auth, open_creator_signup=False))
    root = await admin(client, db)
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await page.goto("/signup")
        await page.get_by_label("Email").fill("cara@example.com")
        await page.get_by_label("Display name").fill("Cara")
        await page.get_by_label("Password").fill("correct horse battery")
        await page.get_by_label("I want to stream").check()
        await page.get_by_role("button", name="Sign up").click()
        await expect(page).to_have_url(re.compile(r"/$"))
        await page.goto("/account")
        section = page.get_by_role("region", name="Creator account")
        await expect(section).to_contain_text("waiting for an admin")
        await checked(tab, shots, "account-creator-request-pending")
        resp = await client.get("/api/v1/admin/creator-requests", headers=bearer(root["token"]))
        (request,) = (await resp.json())["requests"]
        resp = await client.post(
            f"/api/v1/admin/creator-requests/{request['id']}/approve", headers=bearer(root["token"])
        )
        assert resp.status == 200
        await page.reload()
        await expect(section).to_contain_text("was approved")
        await checked(tab, shots, "account-creator-request-approved")
        assert not tab.csp_violations(), tab.console_errors


async def test_a_suspended_account_reads_why_on_the_account_and_login_pages(
    make_client: MakeClient, db: Database, chromium: Chromium, shots: Path
) -> None:
    client = await make_client()
    ann = await register(client, "ann@example.com", display_name="Ann")
    client.session.cookie_jar.clear()
    root = await admin(client, db)
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await log_in(page, "ann@example.com")
        await page.goto("/account")
        await expect(page.get_by_text("Logged in as Ann")).to_be_visible()
        status, _ = await suspend(client, root["token"], ann["user"]["id"], "Spam in chat")
        assert status == 201
        await page.reload()
        alert = page.get_by_role("alert")
        await expect(alert).to_have_text(
            "this account is suspended until further notice: Spam in chat"
        )
        await expect(page.get_by_role("button", name="Log out everywhere")).to_be_hidden()
        await checked(tab, shots, "account-suspended")
    # A timed suspension, read at the login form: the reason and the end.
    until = datetime.now(UTC) + timedelta(days=3)
    status, body = await suspend(client, root["token"], ann["user"]["id"], "Cool down", until)
    assert status == 201
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await page.goto("/login")
        await page.get_by_label("Email").fill("ann@example.com")
        await page.get_by_label("Password").fill("correct horse battery")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("alert")).to_have_text(
            f"this account is suspended until {body['suspension']['until']}: Cool down"
        )
        await expect(page).to_have_url(re.compile(r"/login$"))
        await checked(tab, shots, "login-suspended")
        assert not tab.csp_violations(), tab.console_errors
