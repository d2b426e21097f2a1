"""The watch page's chat panel in headless Chromium against a real server: sign up from
/watch and chat, badges, reports and moderator deletes seen by another viewer, refusals in
words (slow mode counts down), web viewers in the viewer count, reconnects without repeats."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from playwright.async_api import Locator, Page, expect
from pytest_aiohttp import AiohttpClient

from livecore.app import create_app
from livecore.config import Config
from tests.chat.conftest import FAST_CHAT, connect, stream, user
from tests.conftest import PASSWORD, Client, MakeClient, bearer
from tests.support.fakes import CapturingMailSender
from tests.web.browser import Chromium
from tests.web.steps import checked, log_in


def _lines(page: Page) -> Locator:
    return page.get_by_role("region", name="Chat").locator(".chat-log .line.chat")


def _line(page: Page, text: str) -> Locator:
    return _lines(page).filter(has_text=text)


async def _send(page: Page, text: str) -> None:
    await page.get_by_label("Chat message").fill(text)
    await page.get_by_role("button", name="Send").click()


async def test_a_visitor_signs_up_from_watch_chats_and_a_moderator_deletes_a_line(
    make_client: MakeClient, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(chat=FAST_CHAT)
    owner = await user(client, "Host", creator=True)
    await stream(client, owner["token"], "talk-show")
    base = str(client.make_url("/"))
    async with chromium.tab(base) as host, chromium.tab(base) as visitor:
        await log_in(host.page, "Host@example.com")
        await host.page.goto("/watch/talk-show")
        page = visitor.page
        await page.goto("/watch/talk-show")
        chat = page.get_by_role("region", name="Chat")
        await expect(chat).to_contain_text("Log in or sign up to chat.")
        await expect(page.get_by_label("Chat message")).to_be_hidden()
        await checked(visitor, shots, "watch-logged-out")

        await chat.get_by_role("link", name="sign up").click()
        await expect(page).to_have_url(re.compile(r"/signup\?next=%2Fwatch%2Ftalk-show$"))
        await page.get_by_label("Email").fill("vera@example.com")
        await page.get_by_label("Display name").fill("Vera")
        await page.get_by_label("Password").fill(PASSWORD)
        await checked(visitor, shots, "signup")
        await page.get_by_role("button", name="Sign up").click()
        await expect(page).to_have_url(re.compile(r"/watch/talk-show$"))
        await expect(page.get_by_role("link", name="Vera")).to_be_visible()  # the header

        # Both browsers hold a socket: both count as viewers.
        for tab in (host, visitor):
            await expect(tab.page.locator("#viewers")).to_have_text("2 watching")

        await _send(page, "hello from the web")
        await expect(_line(host.page, "hello from the web")).to_have_count(1, timeout=5000)
        await expect(_line(page, "hello from the web")).to_have_count(1)
        await expect(page.get_by_label("Chat message")).to_have_value("")

        await _send(host.page, "welcome, Vera")
        owner_line = _line(page, "welcome, Vera")
        await expect(owner_line.locator(".tag")).to_have_text("Owner")

        # Report this line: the owner's reports queue has it.
        await owner_line.hover()
        await owner_line.get_by_role("button", name="Actions for Host's line").click()
        await expect(page.get_by_role("button", name="Delete")).to_have_count(0)  # not staff
        await checked(visitor, shots, "watch-line-actions")
        await page.get_by_role("button", name="Report").click()
        await expect(chat.locator(".chat-notice")).to_have_text(
            "Reported: the moderators will look at it."
        )
        reports = await client.get(
            "/api/v1/streams/talk-show/chat/reports", headers=bearer(owner["token"])
        )
        assert len((await reports.json())["reports"]) == 1
        await checked(visitor, shots, "watch-chatting")

        # The owner deletes Vera's line: it disappears for Vera too.
        line = _line(host.page, "hello from the web")
        await line.hover()
        await line.get_by_role("button", name="Actions for Vera's line").click()
        await expect(host.page.get_by_role("button", name="Timeout 10 min")).to_be_visible()
        await checked(host, shots, "watch-moderator-actions")
        await host.page.get_by_role("button", name="Delete").click()
        await expect(_line(page, "hello from the web")).to_have_count(0)
        await expect(_line(host.page, "hello from the web")).to_have_count(0)

        # Timed out from the menu: Vera is told until when, and cannot send.
        await _line(host.page, "welcome, Vera").hover()  # staff get no menu on their own lines
        await _send(page, "one more thing")
        line = _line(host.page, "one more thing")
        await line.hover()
        await line.get_by_role("button", name="Actions for Vera's line").click()
        await host.page.get_by_role("button", name="Timeout 1 min").click()
        notice = chat.locator(".chat-notice")
        await expect(notice).to_contain_text(
            re.compile(r"You are timed out until .+ \(\d+ s left\)")
        )
        await expect(page.get_by_role("button", name="Send")).to_be_disabled()
        await checked(visitor, shots, "watch-timed-out")

        # Banned from the menu: told so, and the box is closed.
        await line.hover()
        await line.get_by_role("button", name="Actions for Vera's line").click()
        await host.page.get_by_role("button", name="Ban").click()
        await expect(notice).to_have_text("You are banned from this chat.")
        await expect(page.get_by_label("Chat message")).to_be_disabled()

        # Dark mode (prefers-color-scheme) passes the same checks.
        await page.emulate_media(color_scheme="dark")
        await checked(visitor, shots, "watch-banned-dark")
        for tab in (host, visitor):
            assert not tab.csp_violations(), tab.console_errors


async def test_slow_mode_refusal_counts_down(
    make_client: MakeClient, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(chat=FAST_CHAT)
    owner = await user(client, "Host", creator=True)
    await user(client, "Vera")
    await stream(client, owner["token"], "slow-show")
    resp = await client.patch(
        "/api/v1/streams/slow-show/chat/settings",
        json={"slow_mode_s": 30, "links_allowed": False, "max_length": 40},
        headers=bearer(owner["token"]),
    )
    assert resp.status == 200
    # Another viewer keeps the room (and its memory of who spoke when) while the page reloads.
    other = await connect(client, "slow-show")
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await log_in(page, "Vera@example.com")
        await page.goto("/watch/slow-show")
        chat = page.get_by_role("region", name="Chat")
        notice = chat.locator(".chat-notice")
        await expect(chat.locator(".chat-mode")).to_contain_text(
            "Slow mode: one message every 30 s"
        )
        # Refusals in words, the text kept for another try.
        await _send(page, "see example.com")
        await expect(notice).to_have_text("Links are not allowed in this chat.")
        await expect(page.get_by_label("Chat message")).to_have_value("see example.com")
        await _send(page, "x" * 41)
        await expect(notice).to_have_text("Your message is too long: at most 40 characters.")

        await _send(page, "first")
        await expect(_line(page, "first")).to_have_count(1)
        await expect(notice).to_contain_text(
            re.compile(r"Slow mode: you can send again in \d+ s\.")
        )
        await expect(page.get_by_role("button", name="Send")).to_be_disabled()

        # A reload forgets the wait: the server refuses, and the page counts down its time.
        await page.reload()
        await expect(_line(page, "first")).to_have_count(1)  # history
        await _send(page, "second")
        countdown = re.compile(r"Slow mode: you can send again in (\d+) s\.")
        await expect(notice).to_have_text(countdown)
        first = int(countdown.fullmatch(await notice.inner_text()).group(1))  # type: ignore[union-attr]
        assert 20 <= first <= 30
        await expect(notice).to_have_text(f"Slow mode: you can send again in {first - 1} s.")
        await checked(tab, shots, "watch-slow-mode")
        await expect(_line(page, "second")).to_have_count(0)
        assert not tab.csp_violations(), tab.console_errors
    await other.close()


async def test_chat_reconnects_after_a_server_restart_without_repeating_a_line(
    aiohttp_client: AiohttpClient,
    config: Config,
    dsn: str,
    mailer: CapturingMailSender,
    chromium: Chromium,
    shots: Path,
) -> None:
    async def node(port: int = 0) -> Client:
        app = create_app(replace(config, chat=FAST_CHAT), database_url=dsn, mailer=mailer)
        return await aiohttp_client(app, server_kwargs={"port": port})

    first = await node()
    owner = await user(first, "Host", creator=True)
    await stream(first, owner["token"], "restart-show")
    talker = await connect(first, "restart-show", owner["token"])
    for i in range(3):
        assert (await talker.say(f"before restart {i}", f"b{i}"))["type"] == "ack"
    async with chromium.tab(str(first.make_url("/"))) as tab:
        page = tab.page
        await page.goto("/watch/restart-show")
        await expect(_lines(page)).to_have_count(3)
        await talker.close()
        port = first.port
        assert port is not None
        await first.close()  # the node goes away; the page's socket with it
        await expect(page.locator(".chat-connection")).to_contain_text("Reconnecting")
        await checked(tab, shots, "watch-reconnecting")

        second = await node(port)  # the same address: the page comes back by itself
        talker = await connect(second, "restart-show", owner["token"])
        assert (await talker.say("after restart", "a0"))["type"] == "ack"
        await expect(_line(page, "after restart")).to_have_count(1, timeout=20_000)
        await expect(page.locator(".chat-connection")).to_be_hidden()
        texts = [t.split(":", 1)[1].strip() for t in await _lines(page).all_text_contents()]
        assert [t.removesuffix("⋯").strip() for t in texts] == [
            "before restart 0", "before restart 1", "before restart 2", "after restart"
        ]  # fmt: skip
        await talker.close()
        assert not tab.csp_violations(), tab.console_errors


async def test_a_tip_shows_once_highlighted_in_every_viewers_chat(
    make_client: MakeClient, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(chat=FAST_CHAT)
    owner = await user(client, "Host", creator=True)
    fan = await user(client, "Fan")
    await stream(client, owner["token"], "tip-show")
    base = str(client.make_url("/"))
    async with chromium.tab(base) as first, chromium.tab(base) as second:
        for tab in (first, second):
            await tab.page.goto("/watch/tip-show")
            await expect(tab.page.locator(".chat-connection")).to_be_hidden()
        resp = await client.post(
            "/api/v1/streams/tip-show/tips",
            json={"amount_minor": 500, "currency": "usd", "message": "great show"},
            headers=bearer(fan["token"]) | {"Idempotency-Key": "tip-1"},
        )
        assert resp.status == 201, await resp.text()
        for tab in (first, second):
            tips = tab.page.get_by_role("region", name="Chat").locator(".line.tip")
            await expect(tips).to_have_count(1)
            await expect(tips).to_have_text("Fan tipped $5.00: great show")
        await checked(first, shots, "watch-tip")
        await second.page.reload()  # from the history now: still once
        tips = second.page.locator(".chat-log .line.tip")
        await expect(tips).to_have_text("Fan tipped $5.00: great show")
        await expect(tips).to_have_count(1)


async def test_a_subscriber_only_chat_says_so_to_others_and_opens_for_the_owner(
    make_client: MakeClient, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(chat=FAST_CHAT)
    owner = await user(client, "Host", creator=True)
    await user(client, "Vera")
    resp = await client.post(
        "/api/v1/streams",
        json={"slug": "members", "visibility": "subscribers"},
        headers=bearer(owner["token"]),
    )
    assert resp.status == 201, await resp.text()
    base = str(client.make_url("/"))
    async with chromium.tab(base) as visitor, chromium.tab(base) as host:
        sockets: list[str] = []
        visitor.page.on("websocket", lambda ws: sockets.append(ws.url))
        await visitor.page.goto("/watch/members")
        chat = visitor.page.get_by_role("region", name="Chat")
        await expect(chat).to_contain_text("This chat is for subscribers: Log in or sign up.")
        await checked(visitor, shots, "watch-subscribers-chat-logged-out")
        await log_in(visitor.page, "Vera@example.com")
        await visitor.page.goto("/watch/members")
        await expect(chat).to_contain_text("This chat is for the stream's subscribers.")
        assert sockets == []  # never knocked on a socket it would be refused

        await log_in(host.page, "Host@example.com")
        await host.page.goto("/watch/members")
        await _send(host.page, "members only")
        await expect(_line(host.page, "members only")).to_have_count(1)


async def test_the_owner_sets_the_rooms_rules_from_the_chat_settings(
    make_client: MakeClient, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(chat=FAST_CHAT)
    owner = await user(client, "Host", creator=True)
    await user(client, "Vera")
    await stream(client, owner["token"], "rules-show")
    base = str(client.make_url("/"))
    async with chromium.tab(base) as host, chromium.tab(base) as visitor:
        await log_in(visitor.page, "Vera@example.com")
        await visitor.page.goto("/watch/rules-show")
        await expect(visitor.page.get_by_label("Chat message")).to_be_visible()
        # Viewers get no settings.
        await expect(visitor.page.get_by_role("button", name="Chat settings")).to_be_hidden()

        page = host.page
        await log_in(page, "Host@example.com")
        await page.goto("/watch/rules-show")
        toggle = page.get_by_role("button", name="Chat settings")
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        await page.get_by_label("Slow mode").select_option("30")
        await page.get_by_label("Links allowed").set_checked(False)
        await page.get_by_label("Banned terms, one per line").fill("badword\n")
        await checked(host, shots, "watch-chat-settings")
        await page.get_by_role("button", name="Save settings").click()
        await expect(page.locator(".chat-notice")).to_have_text("Chat settings saved.")
        await expect(page.locator(".chat-settings")).to_be_hidden()

        # Everyone's panel follows the room_mode event, and the rules hold.
        mode = visitor.page.locator(".chat-mode")
        await expect(mode).to_have_text("Slow mode: one message every 30 s · No links")
        await _send(visitor.page, "you are a badword")
        await expect(visitor.page.locator(".chat-notice")).to_have_text(
            "Your message has a word that is not allowed in this chat."
        )
        settings = await client.get(
            "/api/v1/streams/rules-show/chat/settings", headers=bearer(owner["token"])
        )
        body = await settings.json()
        assert (body["slow_mode_s"], body["links_allowed"], body["banned_terms"]) == (
            30, False, ["badword"]
        )  # fmt: skip
        # Opened again, the form shows what is set.
        await toggle.click()
        await expect(page.get_by_label("Slow mode")).to_have_value("30")
        await expect(page.get_by_label("Banned terms, one per line")).to_have_value("badword")
