"""Two-factor authentication in headless Chromium: turning it on from the account page (QR
code, setup key, a first code, the recovery codes), the two-step login with a code and with
a recovery code, and turning it off; each state checked with axe-core and photographed."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pyotp
from playwright.async_api import Page, expect

from livecore.auth import totp
from tests.conftest import PASSWORD, Client, bearer, register
from tests.web.browser import Chromium
from tests.web.steps import checked

EMAIL = "ann@example.com"
NEW = "purple monkey dishwasher"


def code(secret: str, *, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + steps * totp.STEP_S)


async def _password_step(page: Page, password: str = PASSWORD) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()


async def _log_out(page: Page) -> None:
    await page.goto("/")
    await page.get_by_role("button", name="Log out", exact=True).click()
    await expect(page.get_by_role("link", name="Log in")).to_be_visible()


async def test_turn_on_2fa_log_in_with_codes_and_turn_it_off(
    client: Client, chromium: Chromium, shots: Path
) -> None:
    ann = await register(client, EMAIL)
    client.session.cookie_jar.clear()
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await _password_step(page)
        await expect(page).to_have_url(re.compile(r"/$"))
        await page.goto("/account")
        panel = page.get_by_role("region", name="Two-factor authentication")
        await expect(panel).to_contain_text("Off: logging in asks only for your password.")
        await checked(tab, shots, "account-2fa-off")

        await panel.get_by_role("button", name="Set up two-factor authentication").click()
        qr = panel.get_by_role("img", name="QR code with the setup key for your authenticator app")
        await expect(qr).to_be_visible()
        assert await qr.evaluate("img => img.naturalWidth > 0")  # the SVG decoded
        secret = (await panel.locator("#tfa-secret").inner_text()).replace(" ", "")
        assert len(secret) == 32
        await checked(tab, shots, "account-2fa-enrol")

        enrol = page.locator("#tfa-enrol")
        await enrol.get_by_label("Code from the app").fill(code(secret))
        await enrol.get_by_label("Your password").fill("not the password at all")
        await enrol.get_by_role("button", name="Turn on two-factor authentication").click()
        await expect(panel.get_by_role("alert")).to_have_text("Password is wrong.")
        await enrol.get_by_label("Code from the app").fill(
            "000000" if code(secret) != "000000" else "111111"
        )
        await enrol.get_by_label("Your password").fill(PASSWORD)
        await enrol.get_by_role("button", name="Turn on two-factor authentication").click()
        await expect(panel.get_by_role("alert")).to_have_text("Code is wrong or expired.")
        await enrol.get_by_label("Code from the app").fill(code(secret))
        await enrol.get_by_role("button", name="Turn on two-factor authentication").click()
        await expect(page.get_by_role("status")).to_have_text(
            "Two-factor authentication is on. Save your recovery codes now."
        )
        codes = panel.locator("#tfa-codes li")
        await expect(codes).to_have_count(10)
        recovery = await codes.all_inner_texts()
        await expect(panel).to_contain_text("10 recovery codes left.")
        await checked(tab, shots, "account-2fa-on")

        # The two-step login: the password, then a code; the password is not asked again.
        await _log_out(page)
        await _password_step(page)
        code_box = page.get_by_label("Code from the app, or a recovery code")
        await expect(code_box).to_be_focused()
        await expect(page.get_by_label("Password")).to_be_hidden()
        await checked(tab, shots, "login-code-step")
        await code_box.fill("000000" if code(secret, steps=1) != "000000" else "111111")
        await page.get_by_role("button", name="Verify").click()
        await expect(page.get_by_role("alert")).to_have_text("the code is wrong or expired")
        await checked(tab, shots, "login-code-refused")
        await code_box.fill(code(secret, steps=1))
        await page.get_by_role("button", name="Verify").click()
        await expect(page).to_have_url(re.compile(r"/$"))
        await expect(page.get_by_role("link", name="Ann")).to_be_visible()

        # A recovery code instead of the app's code, once.
        await _log_out(page)
        await _password_step(page)
        await code_box.fill(recovery[0])
        await page.get_by_role("button", name="Verify").click()
        await expect(page).to_have_url(re.compile(r"/$"))

        # A pending login that has gone stale (here: the password changed in between) sends
        # the page back to the password step, saying why.
        await _log_out(page)
        await _password_step(page)
        await expect(code_box).to_be_visible()  # the password step is over
        changed = await client.post(
            "/api/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": NEW},
            headers=bearer(ann["token"]),
        )
        assert changed.status == 204
        await code_box.fill(recovery[1])
        await page.get_by_role("button", name="Verify").click()
        await expect(page.get_by_role("alert")).to_have_text(
            "the login has expired: enter your password again"
        )
        await expect(page.get_by_label("Password")).to_be_visible()
        await checked(tab, shots, "login-code-expired")
        await _password_step(page, NEW)
        await code_box.fill(recovery[1])
        await page.get_by_role("button", name="Verify").click()
        await expect(page).to_have_url(re.compile(r"/$"))

        await page.goto("/account")
        await expect(panel).to_contain_text("8 recovery codes left.")
        disable = page.locator("#tfa-disable")
        await disable.get_by_label("Or your password").fill("not the password at all")
        await disable.get_by_role("button", name="Turn off two-factor authentication").click()
        await expect(panel.get_by_role("alert")).to_have_text("Password is wrong.")
        await disable.get_by_label("Or your password").fill(NEW)
        await disable.get_by_role("button", name="Turn off two-factor authentication").click()
        await expect(page.get_by_role("status")).to_have_text("Two-factor authentication is off.")
        await expect(panel).to_contain_text("Off: logging in asks only for your password.")
        await checked(tab, shots, "account-2fa-turned-off")
        assert not tab.csp_violations(), tab.console_errors

    # The password alone logs in again.
    resp = await client.post("/api/v1/auth/login", json={"email": EMAIL, "password": NEW})
    assert resp.status == 200
