"""The studio in headless Chromium against a real server: log in through the shared login,
make a stream, go live with the fake camera over WHIP (H.264, loopback only), reload and go
live again without a new key while OBS's key (an aiortc publisher) still works, the live
dashboard (duration, viewers, ingest health), the chat with moderator tools, recent tips,
past broadcasts with their audience, editing and deleting a stream; and the moderation page
(moderators, banned terms, bans and timeouts, reports, the audit)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from playwright.async_api import expect

from livecore.appkeys import CHAT, HUBS
from livecore.sfu.media import MediaUnit
from tests.chat.conftest import FAST_CHAT, connect, stream, user
from tests.conftest import PASSWORD, Client, MakeClient, bearer, register, wait_state
from tests.support.media import clip
from tests.support.rtc import publish
from tests.web.browser import LOOPBACK, Chromium, Tab, candidate_addresses
from tests.web.steps import checked, log_in


async def _h264_keyframes(client: Client, slug: str, want: int, timeout_s: float) -> int:
    """Count the H.264 keyframes the stream's hub receives until `want` have arrived."""
    hub = client.app[HUBS].by_slug(slug)
    assert hub is not None, "the stream has no hub: nothing is publishing"
    sub = hub.subscribe("browser-test")
    keyframes = 0
    try:
        async with asyncio.timeout(timeout_s):
            while keyframes < want:
                unit: MediaUnit | None = await sub.get()
                assert unit is not None, "the hub closed"
                if unit.kind == "video":
                    assert unit.codec == "h264"
                    keyframes += unit.keyframe
    finally:
        hub.unsubscribe(sub)
    return keyframes


async def _assert_loopback(tab: Tab) -> None:
    """The offers held no address but loopback, and the pairs in use are loopback."""
    assert tab.offers and not tab.refused_offers
    for offer in tab.offers:
        assert all(a == LOOPBACK for a in candidate_addresses(offer)), offer
    pairs = await tab.selected_pairs()
    assert pairs and all(p["remote"] == LOOPBACK for p in pairs), pairs
    assert all(p["local"] in (LOOPBACK, None) for p in pairs), pairs


async def test_the_creator_goes_live_again_after_a_reload_without_a_new_key(
    make_client: MakeClient, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(chat=FAST_CHAT)
    await register(client, "cam@example.com", creator=True, display_name="Cam")
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        caps = await page.evaluate(
            "() => RTCRtpSender.getCapabilities('video').codecs.map((c) => c.mimeType)"
        )
        assert "video/H264" in caps, f"this Chromium cannot send H.264: {caps}"

        # Logged out, the studio sends the visitor to the shared login, which comes back.
        await page.goto("/studio")
        signed_out = page.locator("#signed-out")
        await expect(signed_out).to_contain_text("The studio is where creators run their streams.")
        await checked(tab, shots, "studio-logged-out")
        await signed_out.get_by_role("link", name="Log in").click()
        await expect(page).to_have_url(re.compile(r"/login\?next=%2Fstudio$"))
        await page.get_by_label("Email").fill("cam@example.com")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await expect(page).to_have_url(re.compile(r"/studio$"))
        await expect(page.get_by_role("link", name="Cam")).to_be_visible()  # the header
        await expect(page.get_by_role("heading", name="Welcome to your studio")).to_be_visible()
        await checked(tab, shots, "studio-no-streams")

        create = page.locator("#create-form")
        await create.get_by_label("Slug").fill("cam-show")
        await create.get_by_label("Title").fill("Camera show")
        await create.get_by_role("button", name="Create").click()
        await expect(page.locator("#selected-title")).to_have_text("Camera show")
        origin = str(client.make_url("/")).rstrip("/")
        await expect(page.locator("#server-url")).to_have_text(f"{origin}/whip/cam-show")
        obs_key = await page.locator("#stream-key").text_content()
        assert obs_key and obs_key.startswith("lck_")
        await checked(tab, shots, "studio-created-key-shown")

        await page.get_by_role("button", name="Go live").click()
        await expect(page.locator("#status")).to_have_text("Live on cam-show (H.264).")
        await expect(page.locator("#error")).to_be_hidden()
        await _assert_loopback(tab)
        await wait_state(client, "cam-show", "live")
        assert await _h264_keyframes(client, "cam-show", want=2, timeout_s=20) == 2
        # The dashboard follows the socket's stream_state, and reads the ingest's health.
        dashboard = page.get_by_role("region", name="Live now")
        await expect(dashboard).to_be_visible()
        await expect(page.locator("#h-codec")).to_have_text("H.264 + Opus", timeout=20_000)
        await expect(page.locator("#h-resolution")).to_have_text(re.compile(r"^\d+\u00d7\d+$"))
        await expect(page.locator("#live-for")).to_have_text(re.compile(r"^\d+:\d\d$"))
        await expect(page.locator("#viewer-count")).to_have_text(re.compile(r"^\d+$"))
        await checked(tab, shots, "studio-live-from-browser")

        await page.get_by_role("button", name="Stop").click()
        await expect(page.locator("#status")).to_have_text("Stopped: the stream is offline.")
        await wait_state(client, "cam-show", "offline")
        await expect(dashboard).to_be_hidden()

        # After a reload the key is gone from the page, and going live needs none.
        await page.reload()
        await expect(page.locator("#selected-title")).to_have_text("Camera show")
        await expect(page.locator("#stream-key")).to_have_text(
            "hidden: it is shown only right after it is made"
        )
        tab.offers.clear()
        await page.get_by_role("button", name="Go live").click()
        await expect(page.locator("#status")).to_have_text("Live on cam-show (H.264).")
        await _assert_loopback(tab)
        await wait_state(client, "cam-show", "live")
        assert await _h264_keyframes(client, "cam-show", want=1, timeout_s=20) == 1
        await page.get_by_role("button", name="Stop").click()
        await wait_state(client, "cam-show", "offline")

        # OBS's key was never rotated: a publisher with it goes live, and the studio's
        # dashboard shows that publisher's ingest (the test clip: 640x360 H.264 + Opus).
        media = clip()
        obs = await publish(client.session, f"{origin}/whip/cam-show", obs_key, media)
        try:
            await expect(dashboard).to_be_visible()
            await expect(page.locator("#selected-state")).to_have_text("live")
            await expect(page.locator("#h-resolution")).to_have_text(
                f"{media.width}\u00d7{media.height}", timeout=20_000
            )
            await expect(page.locator("#h-codec")).to_have_text("H.264 + Opus")
            await expect(page.locator("#h-fps")).to_have_text(re.compile(r"^\d+\.\d$"))
            loss = re.compile(r"^\d+\.\d\d % \d+ of \d+$")
            await expect(page.locator("#h-loss")).to_have_text(loss)
            await checked(tab, shots, "studio-live-from-obs")
        finally:
            await obs.close()
        await wait_state(client, "cam-show", "offline")

        # Three broadcasts, each listed with its audience (the studio's own chat socket).
        rows = page.locator("#past-broadcasts tr")
        await expect(rows).to_have_count(3, timeout=15_000)
        await expect(rows.first.locator("td").nth(2)).to_have_text(re.compile(r"^\d+$"))
        await checked(tab, shots, "studio-past-broadcasts")
        assert not tab.csp_violations(), tab.console_errors


async def test_the_dashboard_chat_moderates_and_shows_tips_and_the_stream_is_edited(
    make_client: MakeClient, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(chat=FAST_CHAT)
    owner = await user(client, "Host", creator=True)
    fan = await user(client, "Fan")
    await stream(client, owner["token"], "talk-show")
    await stream(client, owner["token"], "other-show")
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await log_in(page, "Host@example.com")
        await page.goto("/studio")
        await page.get_by_role("button", name=re.compile(r"^talk-show")).click()
        await expect(page.locator("#selected-title")).to_have_text("talk-show")
        chat = page.get_by_role("region", name="Chat")
        await expect(chat.locator(".chat-connection")).to_be_hidden()
        await expect(page.locator("#no-tips")).to_have_text("No tips yet.")

        fan_socket = await connect(client, "talk-show", fan["token"])
        try:
            ack = await fan_socket.say("hello from the fans", "n1")
            line = chat.locator(".line.chat").filter(has_text="hello from the fans")
            await expect(line).to_have_count(1)
            await line.get_by_role("button", name="Actions for Fan's line").click()
            await chat.get_by_role("button", name="Delete").click()
            await fan_socket.wait_for(
                lambda e: e["type"] == "chat_deleted" and e["message_id"] == ack["id"]
            )
            await expect(line).to_have_count(0)
        finally:
            await fan_socket.close()

        resp = await client.post(
            "/api/v1/streams/talk-show/tips",
            json={"amount_minor": 500, "currency": "usd", "message": "great show"},
            headers=bearer(fan["token"]) | {"Idempotency-Key": "tip-1"},
        )
        assert resp.status == 201, await resp.text()
        tips = page.locator("#recent-tips li")
        await expect(tips).to_have_count(1)
        await expect(tips.first).to_contain_text("$5.00 “great show”")
        await expect(chat.locator(".line.tip")).to_have_text("Fan tipped $5.00: great show")
        await checked(tab, shots, "studio-chat-and-tips")

        # Another stream's chat replaces this one's.
        await page.get_by_role("button", name=re.compile(r"^other-show")).click()
        await expect(chat.locator(".line")).to_have_count(0)
        await page.get_by_role("button", name=re.compile(r"^talk-show")).click()
        await expect(chat.locator(".line.tip")).to_have_count(1)

        # Edit the title and who may watch; delete the other stream.
        edit = page.locator("#edit-form")
        await edit.get_by_label("Title").fill("The talk show")
        await edit.get_by_label("Who may watch").select_option("subscribers")
        await edit.get_by_role("button", name="Save").click()
        await expect(page.locator("#status")).to_have_text("Saved.")
        await expect(page.locator("#selected-title")).to_have_text("The talk show")
        body = await (await client.get("/api/v1/streams/talk-show")).json()
        assert (body["stream"]["title"], body["stream"]["visibility"]) == (
            "The talk show",
            "subscribers",
        )
        await edit.get_by_label("Title").fill("\u202eevil")
        await edit.get_by_role("button", name="Save").click()
        await expect(page.locator("#error")).to_have_text(
            "Title must not contain control characters."
        )

        await page.get_by_role("button", name=re.compile(r"^other-show")).click()
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.get_by_role("button", name="Delete stream").click()
        await expect(page.locator("#status")).to_have_text("Deleted other-show.")
        await expect(page.locator("#my-streams li")).to_have_count(1)
        assert (await client.get("/api/v1/streams/other-show")).status == 404

        # A new key is shown once, right after it is made.
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.get_by_role("button", name="New key").click()
        await expect(page.locator("#stream-key")).to_have_text(re.compile(r"^lck_"))
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await page.get_by_role("button", name="Copy key").click()
        await expect(page.locator("#status")).to_have_text(
            "Key copied: paste it into OBS as the Bearer token."
        )
        copied = await page.evaluate("() => navigator.clipboard.readText()")
        assert copied == await page.locator("#stream-key").text_content()
        await checked(tab, shots, "studio-new-key")
        assert not tab.csp_violations(), tab.console_errors


async def test_the_moderation_page(
    make_client: MakeClient, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(chat=FAST_CHAT)
    owner = await user(client, "Host", creator=True)
    alice = await user(client, "Alice")
    bob = await user(client, "Bob")
    await stream(client, owner["token"], "talk-show")
    talker = await connect(client, "talk-show", alice["token"])
    try:
        ack = await talker.say("something rude", "r1")
        await talker.say("something else", "r2")
    finally:
        await talker.close()
    await client.app[CHAT].service.drain()
    url = f"/api/v1/streams/talk-show/chat/messages/{ack['id']}/reports"
    resp = await client.post(url, json={"reason": "rude"}, headers=bearer(bob["token"]))
    assert resp.status == 201
    staff = bearer(owner["token"])
    resp = await client.post(
        "/api/v1/streams/talk-show/chat/timeouts",
        json={"user_id": bob["user"]["id"], "seconds": 600}, headers=staff,
    )  # fmt: skip
    assert resp.status == 201

    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await log_in(page, "Host@example.com")
        await page.goto("/studio")
        await page.get_by_role("link", name="Moderation").click()
        await expect(page).to_have_url(re.compile(r"/studio/moderation\?stream=talk-show$"))
        await expect(page.get_by_role("heading", level=1)).to_have_text("Moderation · talk-show")

        reports = page.get_by_role("list", name="Reports")
        await expect(reports.locator("li")).to_have_count(1)
        await expect(reports).to_contain_text("Alice: something rude")
        await expect(reports).to_contain_text("Reported by Bob")
        bans = page.get_by_role("list", name="Bans and timeouts")
        await expect(bans).to_contain_text("Bob timed out until")
        await checked(tab, shots, "moderation")

        # Moderators by name, then by e-mail; and removed.
        add = page.locator("#add-moderator")
        await add.get_by_label("Name or e-mail").fill("alice")
        await add.get_by_role("button", name="Add moderator").click()
        await expect(page.locator("#status")).to_have_text("Alice is now a moderator.")
        await add.get_by_label("Name or e-mail").fill("nobody@example.com")
        await add.get_by_role("button", name="Add moderator").click()
        await expect(page.locator("#error")).to_have_text("no user has this name or e-mail address")
        await add.get_by_label("Name or e-mail").fill("BOB@example.com")
        await add.get_by_role("button", name="Add moderator").click()
        mods = page.get_by_role("list", name="Moderators")
        await expect(mods.locator("li")).to_have_text(["AliceRemove", "BobRemove"])
        await mods.get_by_role("button", name="Remove Alice as moderator").click()
        await expect(mods.locator("li")).to_have_text(["BobRemove"])

        # Banned terms.
        terms = page.locator("#terms")
        await terms.get_by_label("One per line").fill("spoiler\nspoiler\nleak")
        await terms.get_by_role("button", name="Save banned terms").click()
        await expect(page.locator("#status")).to_have_text("Banned terms saved (2 terms).")
        settings = await (
            await client.get("/api/v1/streams/talk-show/chat/settings", headers=staff)
        ).json()
        assert settings["banned_terms"] == ["spoiler", "leak"]

        # Lift the timeout.
        await bans.get_by_role("button", name="Lift Bob's timeout").click()
        await expect(page.locator("#status")).to_have_text("Bob may chat again.")
        await expect(bans.locator("li")).to_have_count(0)
        await expect(page.locator("#no-bans")).to_be_visible()

        # Resolve the report; it moves to the resolved tab.
        await reports.get_by_role("button", name=re.compile(r"^Resolve the report")).click()
        await expect(page.locator("#status")).to_have_text("Report resolved.")
        await expect(page.locator("#no-reports")).to_have_text("No open reports.")
        await page.get_by_role("button", name="Resolved").click()
        await expect(reports.locator("li")).to_have_count(1)
        await expect(reports.locator(".badge")).to_have_text("resolved")

        audit = page.get_by_role("list", name="Actions on this stream")
        await expect(audit.locator("li").first).to_contain_text("Host resolved a report")
        for said in (
            "Host lifted Bob's ban or timeout",
            "Host changed the chat settings (banned terms)",
            "Host removed Alice as moderator",
            "Host made Bob a moderator",
            "Host made Alice a moderator",
            "Host timed out Bob for 600 s",
            "Host created the stream",
        ):
            await expect(audit).to_contain_text(said)
        await checked(tab, shots, "moderation-after")

    # A moderator (Bob) sees the queue but not the audit or the moderator controls.
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await log_in(page, "Bob@example.com")
        await page.goto("/studio/moderation?stream=talk-show")
        await expect(page.get_by_role("heading", name="Reports")).to_be_visible()
        await expect(page.locator("#mods-owner-only")).to_be_visible()
        await expect(page.locator("#add-moderator")).to_be_hidden()
        await expect(page.locator("#audit-panel")).to_be_hidden()
        await expect(page.locator("#error")).to_be_hidden()
        await checked(tab, shots, "moderation-as-moderator")


async def test_a_visitor_signs_up_from_the_studio_as_a_creator(
    client: Client, chromium: Chromium, shots: Path
) -> None:
    await register(client, "vic@example.com", display_name="Vic")  # a viewer account
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        await page.goto("/studio")
        await page.get_by_role("link", name="sign up as a creator").click()
        await expect(page).to_have_url(re.compile(r"/signup\?next=%2Fstudio$"))
        creator = page.get_by_label("I want to stream (a creator account)")
        await expect(creator).to_be_checked()  # coming from the studio
        await page.get_by_label("Email").fill("nova@example.com")
        await page.get_by_label("Display name").fill("Nova")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign up").click()
        await expect(page).to_have_url(re.compile(r"/studio$"))
        await expect(page.get_by_role("heading", name="Welcome to your studio")).to_be_visible()
        me = await page.evaluate("async () => (await (await fetch('/api/v1/me')).json()).user")
        assert me["role"] == "creator"
        await page.emulate_media(color_scheme="dark")
        await checked(tab, shots, "studio-welcome-dark")

    async with chromium.tab(str(client.make_url("/"))) as tab:
        await log_in(tab.page, "vic@example.com")
        await tab.page.goto("/studio")
        await expect(tab.page.locator("#not-creator")).to_contain_text(
            "Your account is a viewer account"
        )
        await checked(tab, shots, "studio-viewer-account")
