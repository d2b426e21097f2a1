"""Tipping from /watch in headless Chromium against a real server: the Tip dialog with the
built-in test provider (the tip shows once in every viewer's chat), refusals said in words,
and with Stripe (the Stripe-shaped peer) the calls the page makes up to where Stripe.js takes
over, which cannot load here: the page says so, and each attempt keeps its Idempotency-Key."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from playwright.async_api import Page, Request, Route, expect

from livecore.config import Config
from tests.chat.conftest import FAST_CHAT, stream, user
from tests.conftest import MakeClient
from tests.support.stripe_peer import StripePeer
from tests.tips.test_stripe_tips import stripe_config
from tests.web.browser import Chromium, Tab
from tests.web.steps import UUID4, checked, log_in


def _tip_posts(page: Page) -> list[Request]:
    """Every tip the page sends, as it sends them."""
    posts: list[Request] = []
    page.on(
        "request",
        lambda r: posts.append(r) if r.method == "POST" and r.url.endswith("/tips") else None,
    )
    return posts


async def test_a_tip_from_the_dialog_shows_once_in_both_viewers_chats(
    make_client: MakeClient, config: Config, chromium: Chromium, shots: Path
) -> None:
    # One tip a minute, so the second is refused by the velocity limit.
    client = await make_client(chat=FAST_CHAT, tips=replace(config.tips, viewer_tips_per_minute=1))
    owner = await user(client, "Host", creator=True)
    await user(client, "Fan")
    await stream(client, owner["token"], "tip-show")
    base = str(client.make_url("/"))
    async with chromium.tab(base) as fan, chromium.tab(base) as other:
        await other.page.goto("/watch/tip-show")
        # Logged out: the dialog says how to tip instead.
        await other.page.get_by_role("button", name="Tip", exact=True).click()
        dialog = other.page.get_by_role("dialog", name="Tip Host")
        await expect(dialog).to_contain_text("Log in or sign up to tip Host.")
        await checked(other, shots, "tip-logged-out")
        await dialog.get_by_role("button", name="Close").click()
        await expect(dialog).to_be_hidden()

        page = fan.page
        posts = _tip_posts(page)
        await log_in(page, "Fan@example.com")
        await page.goto("/watch/tip-show")
        await expect(page.locator(".chat-connection")).to_be_hidden()
        await page.get_by_role("button", name="Tip", exact=True).click()
        dialog = page.get_by_role("dialog", name="Tip Host")
        await expect(dialog).to_contain_text("Test mode: no money moves.")
        # A new account may tip up to $20 on its first day: the presets and limits say so.
        presets = dialog.get_by_role("group", name="Amount").get_by_role("button")
        await expect(presets).to_have_text(["$1", "$5", "$10", "$20"])
        await expect(dialog).to_contain_text(
            re.compile(r"New accounts may tip at most \$20\.00 until")
        )

        # Refusals in words, before anything is sent.
        amount = dialog.get_by_label("Tip amount")
        send = dialog.get_by_role("button", name="Send tip")
        outcome = dialog.get_by_role("status")
        await amount.fill("0.50")
        await send.click()
        await expect(outcome).to_have_text("The smallest tip is $1.00.")
        await expect(amount).to_have_attribute("aria-invalid", "true")
        await amount.fill("25")
        await send.click()
        await expect(outcome).to_contain_text("New accounts may tip at most $20.00 until")
        await amount.fill("five")
        await send.click()
        await expect(outcome).to_have_text("Enter an amount, like 5 or 5.00.")
        assert posts == []

        await dialog.get_by_role("button", name="$5", exact=True).click()
        await expect(amount).to_have_value("5.00")
        await expect(dialog.get_by_role("button", name="$5", exact=True)).to_have_attribute(
            "aria-pressed", "true"
        )
        await dialog.get_by_label("Tip message").fill("great show")
        await checked(fan, shots, "tip-dialog")
        await send.click()
        await expect(outcome).to_have_text(
            "Thank you! You tipped Host $5.00; it shows in the chat. Test mode: no money moved."
        )
        await checked(fan, shots, "tip-sent")
        for tab in (fan, other):
            tips = tab.page.get_by_role("region", name="Chat").locator(".line.tip")
            await expect(tips).to_have_text(["Fan tipped $5.00: great show"])
        (sent,) = posts
        assert UUID4.fullmatch(await sent.header_value("Idempotency-Key") or "")
        assert sent.post_data_json == {
            "amount_minor": 500, "currency": "usd", "message": "great show"
        }  # fmt: skip

        # The second tip within the minute: the limit is said in words, with its wait.
        await dialog.get_by_role("button", name="$1", exact=True).click()
        await send.click()
        await expect(outcome).to_contain_text(
            re.compile(r"You have reached a limit on tips \(.+\)\. You can tip again in \d+ s\.")
        )
        await expect(send).to_be_disabled()
        await checked(fan, shots, "tip-limited")
        await page.emulate_media(color_scheme="dark")
        await checked(fan, shots, "tip-limited-dark")
        keys = [await p.header_value("Idempotency-Key") for p in posts]
        assert len(keys) == 2 and keys[0] != keys[1]  # a new attempt, a new key
        await page.keyboard.press("Escape")  # keyboard users close it too
        await expect(dialog).to_be_hidden()
        await expect(page.get_by_role("button", name="Tip", exact=True)).to_be_focused()
        # Still once in both chats.
        for tab in (fan, other):
            tips = tab.page.get_by_role("region", name="Chat").locator(".line.tip")
            await expect(tips).to_have_count(1)
        for tab in (fan, other):
            assert not tab.csp_violations(), tab.console_errors


async def _block_stripe_js(tab: Tab) -> list[str]:
    """Stripe.js cannot load here (no network): its requests are refused in the browser,
    never sent. Returns the addresses the page asked for."""
    asked: list[str] = []

    async def refuse(route: Route) -> None:
        asked.append(route.request.url)
        await route.abort("internetdisconnected")

    await tab.page.context.route("https://js.stripe.com/**", refuse)
    return asked


async def test_with_stripe_the_page_says_the_card_form_could_not_load_and_retries_with_the_same_key(
    make_client: MakeClient,
    config: Config,
    stripe_peer: StripePeer,
    chromium: Chromium,
    shots: Path,
) -> None:
    settings = stripe_config(config, stripe_peer, breaker_reset_s=0.0)
    client = await make_client(chat=FAST_CHAT, stripe=settings.stripe)
    owner = await user(client, "Host", creator=True)
    await user(client, "Fan")
    await stream(client, owner["token"], "card-show")
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        asked = await _block_stripe_js(tab)
        posts = _tip_posts(page)
        await log_in(page, "Fan@example.com")
        await page.goto("/watch/card-show")
        await page.get_by_role("button", name="Tip", exact=True).click()
        dialog = page.get_by_role("dialog", name="Tip Host")
        await expect(dialog.get_by_label("Tip amount")).to_be_visible()
        await expect(dialog).not_to_contain_text("Test mode")
        await expect(dialog).to_contain_text("You pay by card: Stripe's card form opens here")
        await dialog.get_by_role("button", name="$10", exact=True).click()
        await dialog.get_by_role("button", name="Send tip").click()
        outcome = dialog.get_by_role("status")
        await expect(outcome).to_contain_text(
            "The payment form could not load: Stripe.js, which shows the card form, did not "
            "load from js.stripe.com"
        )
        await expect(outcome).to_contain_text("You have not been charged.")
        assert asked and all(url.startswith("https://js.stripe.com/v3") for url in asked)
        # The tip was made, and Stripe made its PaymentIntent, up to where Stripe.js confirms.
        (intent,) = stripe_peer.payment_intents.values()
        assert (intent["amount"], intent["currency"], intent["status"]) == (
            1000, "usd", "requires_payment_method"
        )  # fmt: skip
        await checked(tab, shots, "tip-stripe-js-missing")

        # "Try again" is the same tip with the same key: the same PaymentIntent, no other.
        again = dialog.get_by_role("button", name="Try again")
        await again.click()
        await expect(outcome).to_contain_text("The payment form could not load")
        assert len(stripe_peer.payment_intents) == 1
        keys = [await p.header_value("Idempotency-Key") for p in posts]
        assert len(keys) == 2 and keys[0] == keys[1], keys
        body: Any = posts[0].post_data_json
        assert body == {"amount_minor": 1000, "currency": "usd", "message": ""}

        # Stripe unreachable: the fallback lane, explained.
        await stripe_peer.stop_listening()
        await dialog.get_by_role("button", name="$5", exact=True).click()
        await expect(dialog.get_by_role("button", name="Send tip")).to_be_visible()
        await dialog.get_by_role("button", name="Send tip").click()
        await expect(outcome).to_have_text(
            "Card payments are unavailable right now. Your tip is recorded as pending and you "
            "have not been charged; the creator will send you an invoice to settle it."
        )
        await checked(tab, shots, "tip-fallback-lane")
        await stripe_peer.start_listening()

        # Stripe does not answer (and not the immediate retry either): the outcome is
        # unknown, the fields are locked, and "Try again" asks with the same key.
        stripe_peer.fail_next("/v1/payment_intents", "timeout", times=2)
        await dialog.get_by_role("button", name="$20", exact=True).click()
        await dialog.get_by_role("button", name="Send tip").click()
        await expect(outcome).to_contain_text(
            "The payment processor did not answer in time, so it is not known yet whether you "
            "were charged. Press Try again: it asks about this same tip"
        )
        await expect(dialog.get_by_label("Tip amount")).to_be_disabled()
        await checked(tab, shots, "tip-outcome-unknown")
        await dialog.get_by_role("button", name="Try again").click()
        await expect(outcome).to_contain_text("The payment form could not load")
        keys = [await p.header_value("Idempotency-Key") for p in posts]
        assert len(keys) == 5 and keys[3] == keys[4] and len(set(keys)) == 3, keys
        assert sorted(i["amount"] for i in stripe_peer.payment_intents.values()) == [1000, 2000]
        assert not tab.csp_violations(), tab.console_errors


async def test_back_from_a_banks_page_the_watch_page_says_how_the_payment_went(
    make_client: MakeClient, chromium: Chromium, shots: Path
) -> None:
    # Stripe.js sends a card holder whose bank has its own page there and back to the page's
    # return_url, with the PaymentIntent's outcome in the address.
    client = await make_client(chat=FAST_CHAT)
    owner = await user(client, "Host", creator=True)
    await stream(client, owner["token"], "bank-show")
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        secret = "pi_123_secret_456"
        await page.goto(
            f"/watch/bank-show?payment_intent=pi_123&payment_intent_client_secret={secret}"
            "&redirect_status=succeeded"
        )
        status = page.locator("#money-status")
        await expect(status).to_have_text(
            "Thank you! Your tip is paid; it shows in the chat once Stripe confirms it."
        )
        # The client secret leaves the address bar (and the history) at once.
        await expect(page).to_have_url(re.compile(r"/watch/bank-show$"))
        await checked(tab, shots, "tip-back-from-bank")
        await page.goto("/watch/bank-show?payment_intent=pi_9&redirect_status=failed")
        await expect(status).to_have_text(
            "Your tip's payment did not go through: you have not been charged."
        )
        assert not tab.csp_violations(), tab.console_errors
