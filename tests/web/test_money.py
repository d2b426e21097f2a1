"""The creator's Money page (/studio/money) in headless Chromium against a real server: a tip
through the test provider in the balances, the tips and the charts; statements downloaded and
checked against the ledger; a payout requested; a tier created and retired; fallback-lane
invoices marked paid or given up. Every state is screenshotted and checked with axe-core."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from playwright.async_api import Locator, Page, expect

from livecore.config import Config
from livecore.store import Database
from livecore.store.broadcasts import Broadcasts
from livecore.store.ledger import Ledger
from tests.conftest import Client, MakeClient, bearer
from tests.support.stripe_peer import StripePeer
from tests.tips.people import creator_and_fan
from tests.tips.test_stripe_tips import stripe_config
from tests.web.browser import Chromium, Tab
from tests.web.steps import checked, log_in


async def _checked(tab: Tab, shots: Path, name: str) -> None:
    await checked(tab, shots, name)
    assert tab.csp_violations() == [], name


async def _log_in(page: Page, email: str) -> None:
    # From /login: the home page would show the live stream's thumbnail, which a broadcast
    # without media never makes (a 404 in the console).
    await log_in(page, email, start="/login")


async def _open_money(page: Page) -> None:
    await page.goto("/studio/money")
    await expect(page.locator("body[data-ready='true']")).to_have_count(1)


async def _tip(client: Client, fan: dict[str, Any], key: str, amount: int, message: str) -> Any:
    resp = await client.post(
        "/api/v1/streams/tipjar/tips",
        json={"amount_minor": amount, "currency": "usd", "message": message},
        headers=bearer(fan["token"]) | {"Idempotency-Key": key},
    )
    assert resp.status in (201, 202), await resp.text()
    return await resp.json()


def _chart(page: Page, figure: str) -> Locator:
    return page.locator(f"#{figure}").get_by_role("img")


async def _chart_data(page: Page, figure: str) -> list[list[float]]:
    """What Chart.js draws on the figure's canvas: each dataset's values."""
    data: list[list[float]] = await page.evaluate(
        """(id) => window.Chart.getChart(document.querySelector(`#${id} canvas`))
            .data.datasets.map((d) => d.data)""",
        figure,
    )
    return data


async def _download(page: Page, name: str) -> str:
    async with page.expect_download() as info:
        await page.get_by_role("link", name=name).click()
    download = await info.value
    path = await download.path()
    return await asyncio.to_thread(Path(path).read_text)


async def test_a_tip_shows_in_the_money_page_and_its_charts_and_is_paid_out(
    make_client: MakeClient, config: Config, chromium: Chromium, shots: Path, db: Database
) -> None:
    # Earnings are available at once, so a payout can be requested in the test.
    client = await make_client(tips=replace(config.tips, payout_hold_days=0))
    creator, fan = await creator_and_fan(client)
    stream_id = int(await db.pool.fetchval("SELECT id FROM streams WHERE slug = 'tipjar'"))
    broadcasts = Broadcasts(db)
    broadcast = await broadcasts.start(stream_id)  # as the WHIP ingest opens one
    await broadcasts.record_audience(broadcast.id, 3, 7)
    base = str(client.make_url("/"))
    async with chromium.tab(base) as tab:
        page = tab.page
        await page.goto("/studio/money")
        await expect(page.get_by_role("link", name="Log in").last).to_be_visible()
        await _checked(tab, shots, "money-logged-out")

        await _log_in(page, "creator@example.com")
        await _open_money(page)
        await expect(page.locator("#no-balances")).to_be_visible()
        await expect(_chart(page, "per-day")).to_have_attribute(
            "aria-label", re.compile(r"\$0\.00 in all")
        )
        await _checked(tab, shots, "money-empty")

        body = await _tip(client, fan, "web-1", 500, "great show")
        assert body["test_mode"] is True and body["tip"]["status"] == "succeeded"
        await page.get_by_role("button", name="Refresh").click()
        await expect(page.get_by_role("status")).to_have_text("Up to date.")
        await expect(page.get_by_text("Test mode:")).to_be_visible()

        # Balances: 20% is the platform's; the rest is owed and (no hold) available.
        usd = page.locator("#balances tr", has_text="USD")
        await expect(usd.locator("td")).to_have_text(
            ["$4.00", "$0.00", "$4.00", "$0.00", "Request payout in USD"]
        )
        # The tip, once, with its message and the creator's share.
        tips = page.locator("#tips tr")
        await expect(tips).to_have_count(1)
        await expect(tips.locator("td")).to_contain_text(
            ["$5.00", "$4.00", "great show", "Paid", "Test provider"]
        )
        # The charts: each a labelled image summing it up, with Chart.js's data behind it.
        await expect(_chart(page, "per-day")).to_have_attribute(
            "aria-label", re.compile(r"in USD.*: \$4\.00 in all \(tips \$4\.00, subscriptions")
        )
        per_day = await _chart_data(page, "per-day")
        assert len(per_day[0]) == 30 and per_day[0][-1] == 4 and sum(per_day[0]) == 4
        assert sum(per_day[1]) == 0  # subscriptions
        await expect(_chart(page, "per-broadcast")).to_have_attribute(
            "aria-label", re.compile(r"last 1 broadcasts: \$4\.00 in all; most during .*tipjar")
        )
        assert await _chart_data(page, "per-broadcast") == [[4]]
        await expect(_chart(page, "viewers")).to_have_attribute(
            "aria-label", re.compile(r"peak at once up to 3 .*; 7 unique viewers in all")
        )
        assert await _chart_data(page, "viewers") == [[3], [7]]
        # The table alternative of a chart has the same figures.
        await page.get_by_text("Viewers per broadcast as a table").click()
        table = page.locator("#viewers table")
        await expect(table.locator("tbody td")).to_have_text(["3", "7"])
        await _checked(tab, shots, "money-tipped")

        # Statements: the CSV and the JSON add up to what the ledger owes the creator.
        owed = -(await Ledger(db).balances("creator", creator["user"]["id"]))["usd"]
        assert owed == 400
        rows = list(csv.DictReader(io.StringIO(await _download(page, "Download CSV"))))
        assert [(r["currency"], int(r["tips_minor"]), int(r["net_minor"])) for r in rows] == [
            ("usd", 400, 400)
        ]
        assert sum(int(r["net_minor"]) for r in rows) == owed
        statement = json.loads(await _download(page, "Download JSON"))
        assert statement["totals"]["usd"]["net"] == owed
        assert statement["totals"]["usd"]["platform_fees"] == 100

        # A period the server would refuse is said in words, and nothing is linked.
        await page.get_by_label("From", exact=True).fill("2026-01-10")
        await page.get_by_label("To", exact=True).fill("2026-01-09")
        await expect(page.locator("#statement-problem")).to_have_text("From must not be after To.")
        await expect(page.get_by_role("link", name="Download CSV")).to_have_count(0)  # no href
        await page.get_by_label("From", exact=True).fill("2026-01-01")
        await expect(page.locator("#statement-problem")).to_be_hidden()
        await expect(page.get_by_role("link", name="Download CSV")).to_have_attribute(
            "href", "/api/v1/me/statement?from=2026-01-01&to=2026-01-09&format=csv"
        )

        # A payout of everything available.
        await page.get_by_role("button", name="Request payout in USD").click()
        await expect(page.get_by_role("status")).to_contain_text(
            "Payout of $4.00 requested: In transit."
        )
        await expect(page.locator("#payouts tr").locator("td").nth(1)).to_have_text("$4.00")
        await expect(usd.locator("td").nth(2)).to_have_text("$0.00")  # available
        await expect(page.get_by_role("button", name="Request payout in USD")).to_have_count(0)
        await expect(usd).to_contain_text("Nothing to pay out")
        payouts = await client.get("/api/v1/me/payouts", headers=bearer(creator["token"]))
        assert [p["amount_minor"] for p in (await payouts.json())["payouts"]] == [400]

        # A tier, created from the form, then retired.
        await page.get_by_label("Tier name").fill("Gold")
        await page.get_by_label("Price a month").fill("4.99")
        await page.get_by_role("button", name="Create tier").click()
        await expect(page.get_by_role("status")).to_have_text('Tier "Gold" created: $4.99 a month.')
        gold = page.locator("#tiers tr", has_text="Gold")
        await expect(gold.locator("td")).to_have_text(["$4.99", "0", "Yes", "RenameRetire"])
        tiers = await client.get("/api/v1/me/tiers", headers=bearer(creator["token"]))
        assert [(t["name"], t["price_minor"]) for t in (await tiers.json())["tiers"]] == [
            ("Gold", 499)
        ]
        sub = await client.post(
            f"/api/v1/tiers/{(await tiers.json())['tiers'][0]['id']}/subscribe",
            headers=bearer(fan["token"]),
        )
        assert sub.status == 201
        await page.get_by_role("button", name="Refresh").click()
        await expect(page.locator("#subscriber-count")).to_have_text("1")
        await expect(page.locator("#subscriber-word")).to_have_text("subscriber")
        await _checked(tab, shots, "money-paid-out")
        # Dark mode (prefers-color-scheme): the charts are redrawn in its colours.
        await page.emulate_media(color_scheme="dark")
        await page.wait_for_function(  # --line in dark mode
            """() => window.Chart.getChart(document.querySelector("#per-day canvas"))
                .options.scales.y.grid.color === '#2e2e35'"""
        )
        await _checked(tab, shots, "money-dark")
        await page.emulate_media(color_scheme="light")
        # Renamed in place; its price stays.
        await page.get_by_role("button", name="Rename tier Gold").click()
        await page.get_by_label("New name for tier Gold").fill("Gold fans")
        await _checked(tab, shots, "money-renaming-tier")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("status")).to_have_text('Tier "Gold" is now "Gold fans".')
        gold = page.locator("#tiers tr", has_text="Gold fans")
        await expect(gold.locator("td").first).to_have_text("$4.99")
        await page.get_by_role("button", name="Retire tier Gold fans").click()
        await expect(gold.locator("td").nth(2)).to_have_text("Retired")
        await expect(page.locator("#subscriber-count")).to_have_text("1")  # they go on

        # A price that is no amount is refused in words, before any request.
        await page.get_by_label("Tier name").fill("Silver")
        await page.get_by_label("Price a month").fill("4.999")
        await page.get_by_role("button", name="Create tier").click()
        await expect(page.get_by_role("alert")).to_have_text(
            "Price must be an amount such as 4.99."
        )
        assert tab.console_errors == []


async def test_fallback_lane_invoices_are_marked_paid_or_given_up_from_the_page(
    make_client: MakeClient,
    config: Config,
    stripe_peer: StripePeer,
    chromium: Chromium,
    shots: Path,
    db: Database,
) -> None:
    client = await make_client(stripe=stripe_config(config, stripe_peer).stripe)
    _, fan = await creator_and_fan(client)
    await stripe_peer.stop_listening()  # Stripe unreachable: tips go to the fallback lane
    ids = []
    for n, message in enumerate(("first invoice", "second invoice")):
        body = await _tip(client, fan, f"down-{n}", 1000, message)
        assert body["lane"] == "fallback" and body["tip"]["status"] == "pending"
        ids.append(body["tip"]["id"])
    base = str(client.make_url("/"))
    async with chromium.tab(base) as tab:
        page = tab.page
        await _log_in(page, "creator@example.com")
        await _open_money(page)
        await expect(page.get_by_text("Test mode:")).to_be_hidden()
        await expect(page.locator("#invoices-waiting")).to_contain_text(
            "2 fallback-lane invoices wait for you."
        )
        await page.get_by_role("button", name="Show them").click()
        await expect(page.get_by_label("Status")).to_have_value("pending")
        await expect(page.get_by_label("Fallback-lane invoices only")).to_be_checked()
        rows = page.locator("#tips tr")
        await expect(rows).to_have_count(2)
        await expect(rows.first.locator("td").nth(5)).to_have_text("Fallback (invoice)")
        # No broadcasts yet: said in words where their charts would be.
        await expect(page.locator("#viewers")).to_contain_text("No broadcasts yet.")
        await expect(_chart(page, "viewers")).to_be_hidden()
        await _checked(tab, shots, "money-invoices")

        first = f"tip #{ids[0]} of $10.00"
        await page.get_by_role("button", name=f"Mark paid: {first}").click()
        await expect(page.get_by_role("status")).to_have_text(f"Tip #{ids[0]} marked paid.")
        await expect(rows).to_have_count(1)  # no longer pending
        await page.get_by_role("button", name=f"Give up: tip #{ids[1]} of $10.00").click()
        await expect(page.get_by_role("status")).to_have_text(f"Gave up on tip #{ids[1]}.")
        await expect(page.locator("#no-tips")).to_be_visible()
        await expect(page.locator("#invoices-waiting")).to_be_hidden()

        await page.get_by_label("Status").select_option("")
        await expect(rows).to_have_count(2)
        await expect(page.locator(f"#tips tr[data-tip='{ids[0]}'] td").nth(4)).to_have_text("Paid")
        await expect(page.locator(f"#tips tr[data-tip='{ids[1]}'] td").nth(4)).to_contain_text(
            "Failed"
        )
        # The viewer paid the creator directly: the creator owes the platform its share.
        usd = page.locator("#balances tr", has_text="USD")
        await expect(usd.locator("td").nth(3)).to_have_text("$2.00")  # debt
        await expect(usd).to_contain_text("No payout while you owe a debt")
        await expect(_chart(page, "per-day")).to_have_attribute(
            "aria-label", re.compile(r"-\$2\.00 in all \(tips -\$2\.00")
        )
        await _checked(tab, shots, "money-invoices-settled")
    # A viewer's account has no money page: told so, with nothing to load.
    async with chromium.tab(base) as tab:
        await _log_in(tab.page, "fan@example.com")
        await tab.page.goto("/studio/money")
        await expect(tab.page.get_by_text("This page is for creators")).to_be_visible()
        await expect(tab.page.get_by_role("heading", name="Balances")).to_be_hidden()
        await _checked(tab, shots, "money-viewer")
    statuses = await db.pool.fetch("SELECT id, status FROM tips ORDER BY id")
    assert [(r["id"], r["status"]) for r in statuses] == [
        (ids[0], "succeeded"), (ids[1], "failed"),
    ]  # fmt: skip
    assert (await Ledger(db).check()).ok
