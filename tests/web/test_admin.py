"""The admin console (/admin) in Chromium: an admin finds a live stream and ends it with a
reason; suspends an account from the Users section; filters the audit log and exports it as
CSV. Non-admins read that the console is for admins only; logged out, the login comes first.
Each state is checked with axe-core and saved as screenshots (desktop and 375 px)."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Page, expect

from livecore.config import Config
from livecore.store import Database
from tests.admin.accounts import admin, login
from tests.chat.conftest import user
from tests.conftest import Client, MakeClient, bearer, create_stream, wait_state
from tests.support import media
from tests.support.rtc import publish
from tests.web.browser import Chromium
from tests.web.steps import checked, log_in


async def _download(page: Page, name: str) -> str:
    async with page.expect_download() as info:
        await page.get_by_role("link", name=name).click()
    path = await (await info.value).path()
    return await asyncio.to_thread(Path(path).read_text)


async def test_an_admin_ends_a_live_broadcast_from_the_console(
    client: Client, db: Database, chromium: Chromium, shots: Path
) -> None:
    await admin(client, db)
    cam = await user(client, "cam", creator=True)
    fan = await user(client, "fan")
    key = await create_stream(client, cam["token"], "late-show", title="Late show")
    resp = await client.post(
        "/api/v1/streams/late-show/tips", json={"amount_minor": 700, "currency": "usd"},
        headers=bearer(fan["token"]) | {"Idempotency-Key": "tip-1"},
    )  # fmt: skip
    assert resp.status in (200, 201), await resp.text()
    pub = await publish(client.session, str(client.make_url("/whip/late-show")), key, media.clip())
    try:
        await wait_state(client, "late-show", "live")
        async with chromium.tab(str(client.make_url("/"))) as tab:
            page = tab.page
            # Logged out: the login page, coming back to the console afterwards.
            await page.goto("/admin")
            await expect(page).to_have_url(str(client.make_url("/login")) + "?next=%2Fadmin")
            # A viewer is told the console is for admins only.
            await log_in(page, "fan@example.com", start=None)
            await page.goto("/admin")
            await expect(page.get_by_role("heading", name="Admins only")).to_be_visible()
            await expect(page.locator("#console")).to_be_hidden()
            await checked(tab, shots, "admin-not-admin")
            await page.context.clear_cookies()
            await log_in(page, "root@example.com", start=None)
            # Every page's header leads an admin to the console.
            await page.goto("/")
            await page.get_by_role("link", name="Admin console").click()
            await expect(page).to_have_url(str(client.make_url("/admin")))
            card = page.get_by_role("list", name="Live streams").get_by_role(
                "listitem", name="Late show"
            )
            await expect(card.get_by_role("link", name="Late show")).to_be_visible()
            await expect(card).to_contain_text("cam · 0 viewers · public")
            await expect(card).to_contain_text("Ingest: h264")
            # The tip's platform share is the revenue of the day, drawn and in words.
            await expect(page.locator("#revenue-totals")).to_contain_text("from $7.00 charged")
            net = await page.evaluate(
                """() => window.Chart.getChart(document.querySelector('#revenue canvas'))
                    .data.datasets[0].data.reduce((a, b) => a + b, 0)"""
            )
            assert 0 < net < 7
            await checked(tab, shots, "admin-live")
            # Ending needs a reason: without one nothing is sent.
            await card.get_by_role("button", name="End broadcast").click()
            await expect(page.get_by_role("alert")).to_have_text(
                'Say why the broadcast of "Late show" ends.'
            )
            await card.get_by_label("Reason").fill("Terms of service, 3.1")
            await card.get_by_label("Block publishing").select_option(label="24 hours")
            # A refresh of the live streams keeps the card, and what is typed in it.
            await page.get_by_role("button", name="Refresh live streams").click()
            await expect(card.get_by_label("Reason")).to_have_value("Terms of service, 3.1")
            await expect(card.get_by_label("Block publishing")).to_have_value("86400")
            await card.get_by_role("button", name="End broadcast").click()
            await expect(page.get_by_role("status")).to_contain_text(
                "Ended the broadcast of Late show. Publishing is blocked until"
            )
            await wait_state(client, "late-show", "offline")
            await expect(page.get_by_text("Nothing is live.")).to_be_visible()
            await checked(tab, shots, "admin-ended")
    finally:
        await pub.close()
    row = await db.pool.fetchrow(
        "SELECT actor_id, details FROM audit_log WHERE action = 'stream.end' ORDER BY id DESC"
    )
    assert row is not None and "Terms of service, 3.1" in row["details"]
    resp = await client.get("/api/v1/streams/late-show/health", headers=bearer(cam["token"]))
    assert (await resp.json())["state"] == "offline"


async def test_an_admin_suspends_an_account_from_the_users_section(
    client: Client, db: Database, chromium: Chromium, shots: Path
) -> None:
    await admin(client, db)
    await user(client, "bob")
    await user(client, "ann", creator=True)
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await log_in(page, "root@example.com")
        await page.goto("/admin")
        search = page.get_by_role("search", name="Users")
        await search.get_by_label("E-mail or name").fill("BOB@")
        await search.get_by_role("button", name="Search").click()
        rows = page.get_by_role("table", name="Accounts found").locator("tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("bob@example.com")
        await page.get_by_role("button", name="Manage bob").click()
        account = page.get_by_role("region", name="bob (bob@example.com)")
        await expect(account).to_contain_text("Two-factor sign-in")
        await account.get_by_label("Reason").fill("Spam in many rooms")
        await account.get_by_role("button", name="Suspend").click()
        await expect(page.get_by_role("status")).to_have_text("Suspended bob.")
        await expect(rows.first).to_contain_text("Suspended until lifted: Spam in many rooms")
        await expect(account.get_by_role("button", name="Unsuspend")).to_be_visible()
        # The audit log below shows the suspension at once, with its reason.
        audit = page.get_by_role("table", name="Audit log entries, newest first")
        await expect(audit.locator("tbody tr").first).to_contain_text(
            "user.suspend" + "user 2 (bob)" + "reason: Spam in many rooms"
        )
        await checked(tab, shots, "admin-suspended")
        status, body = await login(client, "bob")
        assert status == 403 and body["error"]["code"] == "account_suspended"
        await account.get_by_role("button", name="Unsuspend").click()
        await expect(page.get_by_role("status")).to_have_text("bob is no longer suspended.")
        await expect(rows.first).to_contain_text("Active")
        assert (await login(client, "bob"))[0] == 200
        # A timed suspension: the end is picked in the browser's own time zone.
        until = (datetime.now() + timedelta(days=30)).replace(second=0, microsecond=0)
        await account.get_by_label("Reason").fill("Cooling off")
        await account.get_by_label("Until").fill(until.strftime("%Y-%m-%dT%H:%M"))
        await account.get_by_role("button", name="Suspend").click()
        await expect(page.get_by_role("status")).to_have_text("Suspended bob.")
        await expect(rows.first).to_contain_text("Suspended until")
        await expect(rows.first).to_contain_text(": Cooling off")
        status, body = await login(client, "bob")
        assert status == 403
        picked = until.strftime("%Y-%m-%dT%H:%M")
        offset = await page.evaluate("(t) => new Date(t).getTimezoneOffset()", picked)
        expected = until.replace(tzinfo=UTC) + timedelta(minutes=offset)
        assert f"until {expected.isoformat()}" in body["error"]["message"]


async def test_an_admin_filters_the_audit_log_and_exports_it(
    client: Client, db: Database, chromium: Chromium, shots: Path
) -> None:
    root = await admin(client, db)
    bob = await user(client, "bob")
    resp = await client.post(
        f"/api/v1/admin/users/{bob['user']['id']}/suspension",
        json={"reason": "Ban evasion"}, headers=bearer(root["token"]),
    )  # fmt: skip
    assert resp.status == 201
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await log_in(page, "root@example.com")
        await page.goto("/admin")
        entries = page.get_by_role("table", name="Audit log entries, newest first")
        await expect(entries.locator("tbody tr").first).to_contain_text("user.")
        form = page.get_by_role("form", name="Filter the audit log")
        await form.get_by_label("Action").fill("user.suspend")
        await form.get_by_label("Actor").fill("root")
        await form.get_by_role("button", name="Filter").click()
        await expect(entries.locator("tbody tr")).to_have_count(1)
        await expect(entries.locator("tbody tr")).to_contain_text("reason: Ban evasion")
        await expect(entries.locator("tbody tr")).to_contain_text(f"user {bob['user']['id']} (bob)")
        await checked(tab, shots, "admin-audit-filtered")
        text = await _download(page, "Export CSV")
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][:5] == ["id", "at", "actor_id", "actor_name", "action"]
        assert [r[4] for r in rows[1:]] == ["user.suspend"]
        # A filter that matches nothing says so.
        await form.get_by_label("Action").fill("stream.")
        await form.get_by_role("button", name="Filter").click()
        await expect(page.get_by_text("No entry matches.")).to_be_visible()
        # A hundred entries a page: "Older entries" adds the next.
        await db.pool.execute(
            "INSERT INTO audit_log (action, target_type, target_id)"
            " SELECT 'stream.test', 'stream', n::text FROM generate_series(1, 120) n"
        )
        await form.get_by_label("Actor").fill("")
        await form.get_by_label("Action").fill("stream.test")
        await form.get_by_role("button", name="Filter").click()
        await expect(entries.locator("tbody tr")).to_have_count(100)
        await page.get_by_role("button", name="Older entries").click()
        await expect(entries.locator("tbody tr")).to_have_count(120)
        await expect(entries.locator("tbody tr").last).to_contain_text("stream 1")
        await expect(page.get_by_role("button", name="Older entries")).to_be_hidden()
        # A bad filter is refused with the field named.
        await form.get_by_label("Action").fill("Not an action")
        await form.get_by_role("button", name="Filter").click()
        await expect(page.get_by_role("alert")).to_contain_text("Action must be an action")


async def test_an_admin_approves_a_creator_settles_payouts_and_sets_money_and_roles(
    make_client: MakeClient, config: Config, db: Database, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(
        auth=replace(config.auth, open_creator_signup=False),
        tips=replace(config.tips, payout_hold_days=0),  # earnings available at once
    )
    await admin(client, db)
    cam = await user(client, "cam", creator=True)  # a viewer asking to be a creator
    fan = await user(client, "fan")

    async def payout() -> int:
        resp = await client.post(
            "/api/v1/me/payouts", json={"currency": "usd"}, headers=bearer(cam["token"])
        )
        assert resp.status == 201, await resp.text()
        return int((await resp.json())["payout"]["id"])

    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await log_in(page, "root@example.com")
        await page.goto("/admin")
        requests = page.get_by_role("list", name="Pending creator requests")
        await expect(requests).to_contain_text("cam (cam@example.com) asked")
        await requests.get_by_role("button", name="Approve cam").click()
        await expect(page.get_by_role("status")).to_have_text(
            "Approved cam's request to be a creator."
        )
        await expect(page.get_by_text("No pending requests.")).to_be_visible()
        resp = await client.get("/api/v1/me", headers=bearer(cam["token"]))
        assert (await resp.json())["user"]["role"] == "creator"

        await create_stream(client, cam["token"], "cam-room")
        resp = await client.post(
            "/api/v1/streams/cam-room/tips", json={"amount_minor": 1000, "currency": "usd"},
            headers=bearer(fan["token"]) | {"Idempotency-Key": "tip-1"},
        )  # fmt: skip
        assert resp.status == 201, await resp.text()
        first = await payout()
        await page.reload()
        payouts = page.get_by_role("table", name="Payouts in transit")
        row = payouts.locator("tbody tr")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text(f"#{first}")
        await expect(row.get_by_role("button", name="Manage cam")).to_be_visible()
        await checked(tab, shots, "admin-payout")
        # Failing needs a reason; the money goes back on the creator's balance.
        await row.get_by_role("button", name="Mark failed").click()
        await expect(page.get_by_role("alert")).to_have_text(f"Say why payout #{first} failed.")
        await row.get_by_label("Why it failed").fill("Bank account closed")
        await row.get_by_role("button", name="Mark failed").click()
        await expect(page.get_by_role("status")).to_have_text(f"Payout #{first} marked failed.")
        await expect(page.get_by_text("No payout waits to be settled.")).to_be_visible()
        second = await payout()  # the money came back, so it can be asked again
        await page.reload()
        await expect(row).to_contain_text(f"#{second}")
        await row.get_by_role("button", name="Mark paid").click()
        await expect(page.get_by_role("status")).to_have_text(f"Payout #{second} marked paid.")
        resp = await client.get("/api/v1/me/payouts", headers=bearer(cam["token"]))
        states = {p["id"]: p["status"] for p in (await resp.json())["payouts"]}
        assert states == {first: "failed", second: "paid"}

        # The creator's money settings and role, from the account opened in Users.
        await (
            page.get_by_role("table", name="Accounts found")
            .get_by_role("button", name="Manage cam")
            .click()
        )
        account = page.get_by_role("region", name="cam (cam@example.com)")
        await account.get_by_label("Platform fee in basis points").fill("1500")
        await account.get_by_role("button", name="Save money settings").click()
        await expect(page.get_by_role("status")).to_have_text("Saved the money settings of cam.")
        await account.get_by_label("Role", exact=True).select_option(label="Admin")
        await account.get_by_role("button", name="Change role").click()
        await expect(page.get_by_role("status")).to_have_text("cam is now admin.")
        await expect(account).to_contain_text("RoleAdmin")
        await checked(tab, shots, "admin-account")
    rows = await db.pool.fetch(
        "SELECT action FROM audit_log WHERE action IN"
        " ('creator_request.approve', 'payout.failed', 'payout.paid', 'creator.money',"
        " 'user.role_set') ORDER BY id"
    )
    assert [r["action"] for r in rows][-4:] == [
        "payout.failed",
        "payout.paid",
        "creator.money",
        "user.role_set",
    ]
    resp = await client.get(
        f"/api/v1/admin/users/{cam['user']['id']}", headers=bearer(cam["token"])
    )
    assert (await resp.json())["money"]["platform_fee_bps"] == 1500


async def test_an_admin_without_two_factor_is_sent_to_turn_it_on_when_it_is_required(
    make_client: MakeClient, config: Config, db: Database, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(auth=replace(config.auth, require_2fa_admins=True))
    await admin(client, db)
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await log_in(page, "root@example.com")
        await page.goto("/admin")
        await expect(
            page.get_by_role("heading", name="Two-factor sign-in required")
        ).to_be_visible()
        await expect(page.get_by_role("link", name="Go to your account")).to_have_attribute(
            "href", "/account"
        )
        await expect(page.locator("#console")).to_be_hidden()
        await expect(page.get_by_role("alert")).to_be_hidden()
        await checked(tab, shots, "admin-needs-2fa")
