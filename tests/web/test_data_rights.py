"""The account page's "Your data" panel in headless Chromium: "Download my data" saves the
export, "Delete my account" asks for the password before it deletes (axe-core clean,
screenshots at desktop width and 375 px)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from playwright.async_api import expect

from tests.admin.accounts import login
from tests.conftest import Client, register
from tests.web.browser import Chromium
from tests.web.steps import checked, log_in


async def test_download_my_data_and_delete_my_account(
    client: Client, chromium: Chromium, shots: Path
) -> None:
    await register(client, "ann@example.com", display_name="Ann")
    client.session.cookie_jar.clear()
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await log_in(page, "ann@example.com", start="/account")
        await page.goto("/account")
        panel = page.get_by_role("region", name="Your data")
        await expect(panel).to_be_visible()
        await checked(tab, shots, "account-your-data")

        async with page.expect_download() as downloading:
            await panel.get_by_role("button", name="Download my data").click()
        download = await downloading.value
        assert download.suggested_filename.startswith("livecore-data-")
        saved = json.loads(await asyncio.to_thread(Path(await download.path()).read_text))
        assert saved["account"]["email"] == "ann@example.com"
        assert saved["format"] == "livecore-export/1"
        await expect(page.get_by_role("status")).to_have_text("Your data was downloaded.")
        # Once a minute: a second download at once is refused in words.
        await panel.get_by_role("button", name="Download my data").click()
        await expect(panel.get_by_role("alert")).to_contain_text("try again in a minute")

        # Deleting asks first, for the password.
        deleting = page.get_by_role("region", name="Delete your account")
        start = deleting.get_by_role("button", name="Delete my account", exact=True)
        await expect(start).to_have_attribute("aria-expanded", "false")
        await start.click()
        confirm = deleting.get_by_role("form", name="Confirm the deletion")
        await expect(confirm).to_be_visible()
        await expect(start).to_have_attribute("aria-expanded", "true")
        await expect(confirm.get_by_label("Your password")).to_be_focused()
        await checked(tab, shots, "account-delete-confirm")
        # "Keep my account" closes the step without deleting anything.
        await confirm.get_by_role("button", name="Keep my account").click()
        await expect(confirm).to_be_hidden()
        await start.click()
        await confirm.get_by_label("Your password").fill("not my password at all")
        await confirm.get_by_role("button", name="Delete my account for good").click()
        await expect(confirm.get_by_role("alert")).to_have_text("Password is wrong.")
        await checked(tab, shots, "account-delete-wrong-password")
        await confirm.get_by_label("Your password").fill("correct horse battery")
        await confirm.get_by_role("button", name="Delete my account for good").click()
        await expect(page.get_by_role("status")).to_have_text("Your account is deleted. Goodbye.")
        await checked(tab, shots, "account-deleted")
        # The browser is logged out, and the account logs in nowhere.
        await page.goto("/")
        await expect(page.get_by_role("link", name="Log in")).to_be_visible()
        assert not tab.csp_violations(), tab.console_errors
    status, _ = await login(client, "ann")
    assert status == 401
