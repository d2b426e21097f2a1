"""Subscribing in headless Chromium against a real server: a viewer of a subscriber-only
stream subscribes from /watch (test provider) and then plays it; "My subscriptions" cancels
and resumes; with Stripe (the Stripe-shaped peer) the page goes to Checkout and the
confirmation page waits for Stripe's word."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Request, expect

from livecore.config import Config
from tests.chat.conftest import FAST_CHAT, user
from tests.conftest import Client, MakeClient, bearer, create_stream
from tests.support.rtc import publishing
from tests.support.stripe_peer import StripePeer
from tests.tips.test_stripe_tips import deliver_all, stripe_config
from tests.web.browser import Chromium
from tests.web.steps import UUID4, checked, hls_wired, log_in, playing


async def _tier(client: Client, token: str, name: str, price_minor: int) -> int:
    resp = await client.post(
        "/api/v1/me/tiers",
        json={"name": name, "price_minor": price_minor, "currency": "usd"},
        headers=bearer(token),
    )
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["tier"]["id"])


async def _stream(client: Client, token: str, slug: str, visibility: str = "public") -> str:
    title = slug.replace("-", " ").capitalize()
    return await create_stream(client, token, slug, title=title, visibility=visibility)


async def _subscriptions(client: Client, token: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/me/subscriptions", headers=bearer(token))
    return list((await resp.json())["subscriptions"])


@pytest.mark.skipif(not hls_wired(), reason="the app has no /hls/ routes yet")
async def test_a_viewer_of_a_subscriber_only_stream_subscribes_and_then_plays_it(
    make_client: MakeClient, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(chat=FAST_CHAT)
    host = await user(client, "Host", creator=True)
    fan = await user(client, "Fan")
    await _tier(client, host["token"], "Supporter", 300)
    await _tier(client, host["token"], "Gold", 900)
    key = await _stream(client, host["token"], "members-club", "subscribers")
    async with (
        publishing(client, "members-club", key),
        chromium.tab(str(client.make_url("/"))) as tab,
    ):
        page = tab.page
        await log_in(page, "Fan@example.com")
        await page.goto("/watch/members-club")
        # Not an error: the page offers to subscribe.
        await expect(page.locator("#message")).to_have_text("This stream is for its subscribers.")
        status = page.locator("#money-status")
        await expect(status).to_have_text(
            "This stream is for subscribers of Host: subscribe to watch."
        )
        await checked(tab, shots, "watch-subscribers-only")
        await page.get_by_role("button", name="Subscribe", exact=True).click()
        dialog = page.get_by_role("dialog", name="Subscribe to Host")
        await expect(dialog).to_contain_text("Test mode: no money moves.")
        tiers = dialog.get_by_role("group", name="Tier").get_by_role("radio")
        await expect(tiers).to_have_count(2)
        await expect(dialog.get_by_role("radio", name="Supporter $3.00 a month")).to_be_checked()
        await dialog.get_by_role("radio", name="Gold $9.00 a month").check()
        await checked(tab, shots, "subscribe-dialog")
        await dialog.get_by_role("button", name="Confirm subscription").click()

        await expect(dialog).to_be_hidden()
        await expect(status).to_contain_text("You are subscribed to Host (Gold, $9.00 a month")
        await expect(status).to_contain_text("Test mode: no money moves.")
        await expect(page.get_by_role("link", name="Subscribed: Gold")).to_be_focused()
        # The stream plays, and its chat opens, without a reload.
        await playing(page)
        await expect(page.locator("#message")).to_be_hidden()
        await expect(page.get_by_label("Chat message")).to_be_visible()
        await checked(tab, shots, "watch-subscribed")
        (sub,) = await _subscriptions(client, fan["token"])
        assert (sub["tier"]["name"], sub["status"], sub["test_mode"]) == ("Gold", "active", True)

        # Back later: the page knows, and offers no second subscription.
        await page.reload()
        await playing(page)
        await expect(page.get_by_role("link", name="Subscribed: Gold")).to_be_visible()
        await expect(page.get_by_role("button", name="Subscribe", exact=True)).to_have_count(0)
        assert not tab.csp_violations(), tab.console_errors


async def test_my_subscriptions_shows_status_and_renewal_and_cancels_and_resumes(
    make_client: MakeClient, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(chat=FAST_CHAT)
    host = await user(client, "Host", creator=True)
    other = await user(client, "Other", creator=True)
    fan = await user(client, "Fan")
    for owner, tier, price in ((host, "Gold", 500), (other, "Basic", 200)):
        tier_id = await _tier(client, owner["token"], tier, price)
        resp = await client.post(f"/api/v1/tiers/{tier_id}/subscribe", headers=bearer(fan["token"]))
        assert resp.status == 201, await resp.text()
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await page.goto("/subscriptions")
        await expect(page.get_by_role("status").first).to_have_text(
            "Log in to see your subscriptions."
        )
        await checked(tab, shots, "subscriptions-logged-out")
        await log_in(page, "Fan@example.com")
        await page.goto("/")
        await page.get_by_role("link", name="My subscriptions").click()
        await expect(page).to_have_url(re.compile(r"/subscriptions$"))
        items = page.locator(".subscriptions > li")
        await expect(items).to_have_count(2)
        gold = items.filter(has=page.get_by_role("heading", name="Host · Gold"))
        await expect(gold).to_contain_text("$5.00 a month")
        await expect(gold).to_contain_text("Test mode")
        await expect(gold.locator(".sub-state")).to_have_text(re.compile(r"^Active, renews on .+"))
        await checked(tab, shots, "subscriptions")

        cancel = gold.get_by_role("button", name="Cancel")
        await expect(cancel).to_have_accessible_description("Host · Gold")
        await cancel.click()
        await expect(gold.locator(".sub-state")).to_have_text(
            re.compile(r"^Canceled: you keep access until .+")
        )
        await expect(page.locator("#status")).to_contain_text(
            "Canceled: you keep access to Host until"
        )
        resume = gold.get_by_role("button", name="Resume")
        await expect(resume).to_be_focused()
        await checked(tab, shots, "subscriptions-canceled")
        mine = {s["creator"]["display_name"]: s for s in await _subscriptions(client, fan["token"])}
        assert mine["Host"]["cancel_at_period_end"] is True
        assert mine["Other"]["cancel_at_period_end"] is False

        await resume.click()
        await expect(gold.locator(".sub-state")).to_have_text(re.compile(r"^Active, renews on"))
        await expect(page.locator("#status")).to_contain_text(
            "Resumed: your subscription to Host renews on"
        )
        mine = {s["creator"]["display_name"]: s for s in await _subscriptions(client, fan["token"])}
        assert mine["Host"]["cancel_at_period_end"] is False
        await page.emulate_media(color_scheme="dark")
        await checked(tab, shots, "subscriptions-dark")
        assert not tab.csp_violations(), tab.console_errors


async def test_with_stripe_subscribe_goes_to_checkout_and_the_return_page_confirms_it(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, chromium: Chromium,
    shots: Path,
) -> None:  # fmt: skip
    client = await make_client(chat=FAST_CHAT, stripe=stripe_config(config, stripe_peer).stripe)
    host = await user(client, "Host", creator=True)
    fan = await user(client, "Fan")
    await _tier(client, host["token"], "Gold", 500)
    await _stream(client, host["token"], "paid-show")
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        posts: list[Request] = []
        page.on("request", lambda r: posts.append(r) if r.url.endswith("/subscribe") else None)
        await log_in(page, "Fan@example.com")
        await page.goto("/watch/paid-show")
        await page.get_by_role("button", name="Subscribe", exact=True).click()
        dialog = page.get_by_role("dialog", name="Subscribe to Host")
        await expect(dialog).not_to_contain_text("Test mode")
        await expect(dialog).to_contain_text("You pay on Stripe's checkout page")
        await checked(tab, shots, "subscribe-dialog-stripe")
        await dialog.get_by_role("button", name="Continue to payment").click()

        # Off to Checkout (the peer's page stands in for Stripe's).
        await expect(page).to_have_url(re.compile(r"^http://127\.0\.0\.1:\d+/checkout/cs_"))
        (session,) = stripe_peer.checkout_sessions.values()
        assert page.url == session["url"]
        await expect(page.locator("body")).to_contain_text("Stripe Checkout (test peer)")
        (sent,) = posts
        assert UUID4.fullmatch(await sent.header_value("Idempotency-Key") or "")
        assert sent.post_data_json == {"return_path": "/subscriptions"}
        assert session["success_url"].endswith(
            "/subscriptions?checkout=success&session_id={CHECKOUT_SESSION_ID}"
        )
        assert session["cancel_url"].endswith("/subscriptions?checkout=canceled")

        # The viewer leaves Checkout without paying: told so, and sent back to the stream.
        await page.goto("/subscriptions?checkout=canceled")
        await expect(page.get_by_role("heading", name="Checkout canceled")).to_be_visible()
        await expect(page.locator("#checkout-text")).to_have_text(
            "You left Stripe's checkout page before paying: you have not been charged, and you "
            "are not subscribed to Host (Gold)."
        )
        await checked(tab, shots, "checkout-canceled")
        await page.get_by_role("link", name="Back to Paid show").click()
        await expect(page).to_have_url(re.compile(r"/watch/paid-show$"))
        await page.get_by_role("button", name="Subscribe", exact=True).click()
        await dialog.get_by_role("button", name="Continue to payment").click()
        await expect(page).to_have_url(re.compile(r"^http://127\.0\.0\.1:\d+/checkout/cs_"))
        assert len(stripe_peer.checkout_sessions) == 2
        session = stripe_peer.checkout_sessions[page.url.rsplit("/", 1)[1]]
        first, second = [await p.header_value("Idempotency-Key") for p in posts]
        assert first != second  # another attempt

        # Stripe comes back before its webhook arrived: the page says it waits for it.
        back = f"/subscriptions?checkout=success&session_id={session['id']}"
        await page.goto(back)
        text = page.locator("#checkout-text")
        await expect(text).to_have_text(
            "Checkout is complete. Waiting for Stripe to confirm your subscription to Host (Gold)…"
        )
        await expect(page).to_have_url(re.compile(r"/subscriptions$"))
        await checked(tab, shots, "checkout-waiting")
        await deliver_all(client, stripe_peer.complete_checkout(session["id"]))
        await expect(text).to_have_text(
            re.compile(r"^You are subscribed to Host \(Gold\)\. Active, renews on .+\.$")
        )
        await expect(page.get_by_role("link", name="Back to Paid show")).to_have_attribute(
            "href", "/watch/paid-show"
        )
        await expect(page.get_by_role("heading", name="Host · Gold")).to_be_visible()
        await checked(tab, shots, "checkout-confirmed")
        (sub,) = await _subscriptions(client, fan["token"])
        assert (sub["status"], sub["test_mode"]) == ("active", False)
        assert not tab.csp_violations(), tab.console_errors
