"""The account pages in headless Chromium: log in and out, the reset mail's page, change
password, sessions and "log out everywhere"; each page checked with axe-core."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Page, expect

from tests.conftest import Client, register
from tests.support.fakes import CapturingMailSender
from tests.web.browser import Chromium
from tests.web.steps import checked

EMAIL = "ann@example.com"
OLD = "correct horse battery"
NEW = "purple monkey dishwasher"


async def _log_in_with_form(page: Page, password: str) -> None:
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()


async def test_forgotten_password_is_reset_from_the_page_the_mail_links_to(
    client: Client, chromium: Chromium, mailer: CapturingMailSender, shots: Path
) -> None:
    await register(client, EMAIL)
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await page.goto("/")
        await expect(page.get_by_role("link", name="Sign up")).to_be_visible()
        await checked(tab, shots, "home-logged-out")
        await page.get_by_role("link", name="Log in").click()
        await expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
        # A wrong password is refused in words, on the page.
        await _log_in_with_form(page, "not the password at all")
        await expect(page.get_by_role("alert")).to_have_text("invalid email or password")
        await checked(tab, shots, "login-refused")

        await page.get_by_role("link", name="Forgot your password?").click()
        await page.get_by_label("Email").fill(EMAIL)
        await page.get_by_role("button", name="Send reset link").click()
        await expect(page.get_by_role("status")).to_contain_text("a link to choose a new password")
        await checked(tab, shots, "forgot-password-sent")

        mail = await mailer.next_mail()
        found = re.search(r"https?://[^/\s]+(/reset-password#token=\S+)", mail.body)
        assert found is not None, mail.body
        link = found.group(1)  # the mail names public_url; the test server has its own port
        await page.goto(link)
        # The token leaves the address bar at once.
        await expect(page).to_have_url(re.compile(r"/reset-password$"))
        await checked(tab, shots, "reset-password")
        await page.get_by_label("New password").fill("short")
        await page.get_by_role("button", name="Set new password").click()
        await expect(page.get_by_role("alert")).to_contain_text("Password ")
        await page.get_by_label("New password").fill(NEW)
        await page.get_by_role("button", name="Set new password").click()
        await expect(page.get_by_role("status")).to_contain_text("Your password is changed")
        await checked(tab, shots, "reset-password-done")

        # The link works once.
        await page.goto(link)
        await page.get_by_label("New password").fill("another good passphrase")
        await page.get_by_role("button", name="Set new password").click()
        await expect(page.get_by_role("status")).to_contain_text("This link is used or expired.")

        await page.goto("/login")
        await _log_in_with_form(page, OLD)
        await expect(page.get_by_role("alert")).to_have_text("invalid email or password")
        await _log_in_with_form(page, NEW)
        await expect(page).to_have_url(re.compile(r"/$"))
        # Logged in, on every page: the account link and "Log out".
        for path in ("/", "/watch/no-such-show", "/account"):
            await page.goto(path)
            await expect(page.get_by_role("link", name="Ann")).to_be_visible()
            await expect(page.get_by_role("button", name="Log out", exact=True)).to_be_visible()
        await checked(tab, shots, "account-logged-in")
        await page.goto("/")
        await page.get_by_role("button", name="Log out", exact=True).click()
        await expect(page.get_by_role("link", name="Log in")).to_be_visible()
        assert (await client.get("/api/v1/me")).status == 401
        assert not tab.csp_violations(), tab.console_errors


async def test_account_page_changes_the_password_and_logs_out_everywhere(
    client: Client, chromium: Chromium, shots: Path
) -> None:
    await register(client, EMAIL)
    base = str(client.make_url("/"))
    async with chromium.tab(base) as tab, chromium.tab(base) as other:
        page = tab.page
        await page.goto("/account")
        await expect(page).to_have_url(re.compile(r"/login\?next=%2Faccount$"))
        await _log_in_with_form(page, OLD)
        await expect(page).to_have_url(re.compile(r"/account$"))
        await other.page.goto("/login")
        await _log_in_with_form(other.page, OLD)
        await expect(other.page.get_by_role("button", name="Log out", exact=True)).to_be_visible()

        await page.reload()
        sessions = page.locator("#sessions li")
        await expect(sessions).to_have_count(3)  # register's, this browser's, the other's
        await expect(sessions.filter(has_text="this browser")).to_have_count(1)
        await checked(tab, shots, "account")

        await page.get_by_label("Current password").fill("not the password at all")
        await page.get_by_label("New password").fill(NEW)
        await page.get_by_role("button", name="Change password").click()
        await expect(page.get_by_role("alert")).to_have_text("Current password is wrong.")
        await page.get_by_label("Current password").fill(OLD)
        await page.get_by_label("New password").fill(NEW)
        await page.get_by_role("button", name="Change password").click()
        await expect(page.get_by_role("status")).to_contain_text("Password changed.")
        await expect(sessions).to_have_count(1)  # the others ended
        await checked(tab, shots, "account-password-changed")

        await other.page.goto("/login")
        await _log_in_with_form(other.page, NEW)
        await expect(other.page.get_by_role("button", name="Log out", exact=True)).to_be_visible()
        await page.reload()
        await expect(sessions).to_have_count(2)
        await page.get_by_role("button", name="Log out everywhere").click()
        await expect(page).to_have_url(re.compile(r"/login$"))
        await other.page.goto("/")
        await expect(other.page.get_by_role("link", name="Log in")).to_be_visible()
        await checked(other, shots, "logged-out-everywhere")
        assert not tab.csp_violations(), tab.console_errors
