"""Reports in Chromium: a viewer reports a live stream from /watch (a second report of it is
refused in words); an admin finds it in the console's review queue with the stream's picture,
title, viewers and recent chat, ends the broadcast with a reason, and the reporter reads the
outcome on their account page. A chat line reported to the platform is deleted from the
queue, and a report is dismissed. Each state is checked with axe-core and saved as
screenshots (desktop and 375 px)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.async_api import expect

from livecore.store import Database
from tests.admin.accounts import admin, login
from tests.chat.conftest import connect, user
from tests.conftest import Client, bearer, create_stream, wait_state
from tests.support import media
from tests.support.rtc import publish
from tests.web.browser import Chromium
from tests.web.steps import checked, log_in, thumbnail_made


async def _notifications(client: Client, token: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/me/notifications", headers=bearer(token))
    assert resp.status == 200
    found: list[dict[str, Any]] = (await resp.json())["notifications"]
    return found


async def test_a_viewer_reports_a_live_stream_and_an_admin_ends_it_from_the_queue(
    client: Client, db: Database, chromium: Chromium, shots: Path
) -> None:
    await admin(client, db)
    cam = await user(client, "cam", creator=True)
    fan = await user(client, "fan")
    key = await create_stream(client, cam["token"], "late-show", title="Late show")
    pub = await publish(client.session, str(client.make_url("/whip/late-show")), key, media.clip())
    talker = None
    try:
        await wait_state(client, "late-show", "live")
        await thumbnail_made(client, "late-show")
        talker = await connect(client, "late-show", cam["token"])
        assert (await talker.say("welcome to the show", "n1"))["type"] == "ack"
        async with (
            chromium.tab(str(client.make_url("/"))) as viewer,
            chromium.tab(str(client.make_url("/"))) as desk,
        ):
            page = viewer.page
            # Logged out, "Report stream" leads to the login and back.
            await page.goto("/watch/late-show")
            await page.get_by_role("button", name="Report stream").click()
            await expect(page).to_have_url(
                str(client.make_url("/login")) + "?next=%2Fwatch%2Flate-show"
            )
            await log_in(page, "fan@example.com", start=None)
            await page.goto("/watch/late-show")
            await page.get_by_role("button", name="Report stream").click()
            dialog = page.get_by_role("dialog", name="Report Late show")
            await dialog.get_by_role("button", name="Send report").click()
            await expect(dialog.get_by_role("alert")).to_have_text(
                "Choose what is wrong with the stream."
            )
            await dialog.get_by_label("Category").select_option(label="Violence")
            await dialog.get_by_label("Note (optional)").fill("Fighting on camera at 12:03")
            await checked(viewer, shots, "watch-report")
            await dialog.get_by_role("button", name="Send report").click()
            await expect(dialog).to_be_hidden()
            await expect(page.locator("#money-status")).to_have_text(
                "Thank you: your report is with the platform's reviewers."
                " Your account page will say what came of it."
            )
            # A second report of the same stream while the first is open: 409, in words.
            await page.get_by_role("button", name="Report stream").click()
            await dialog.get_by_label("Category").select_option(label="Spam")
            await dialog.get_by_role("button", name="Send report").click()
            await expect(dialog.get_by_role("alert")).to_have_text(
                "You have reported this stream already. The review of that report is still"
                " open: your account page will say what came of it."
            )
            await checked(viewer, shots, "watch-report-again")
            await dialog.get_by_role("button", name="Cancel").click()

            admin_page = desk.page
            await log_in(admin_page, "root@example.com")
            await admin_page.goto("/admin")
            item = admin_page.get_by_role("list", name="Reports, oldest first").get_by_role(
                "listitem", name=re.compile(r"^Report \d+: the stream Late show$")
            )
            picture = item.get_by_role("img", name="Latest picture of Late show")
            await expect(picture).to_be_visible()
            await expect(item.get_by_role("link", name="Late show")).to_be_visible()
            await expect(item).to_contain_text(re.compile(r"Live · \d+ viewers?"))
            await expect(item).to_contain_text("Violence · Filed by a user")
            await expect(item).to_contain_text("Fighting on camera at 12:03")
            await expect(item.get_by_role("list", name="Recent chat")).to_contain_text(
                "cam: welcome to the show"
            )
            # Only what fits a stream: no "Delete line", no "Take down recording".
            await expect(item.get_by_role("button", name="Delete line")).to_have_count(0)
            await expect(item.get_by_role("button", name="Take down recording")).to_have_count(0)
            await expect(item.get_by_role("button", name="Suspend account")).to_be_visible()
            await checked(desk, shots, "admin-report-stream")
            # Ending needs a reason: without one nothing is sent.
            await item.get_by_role("button", name="End broadcast").click()
            await expect(admin_page.get_by_role("alert")).to_contain_text("needs a reason")
            await item.get_by_label("Reason").fill("Violence, terms 4.2")
            await item.get_by_role("button", name="End broadcast").click()
            await expect(admin_page.get_by_role("status")).to_have_text(
                "Ended the broadcast of the stream Late show. Closed 1 report."
            )
            await wait_state(client, "late-show", "offline")
            await expect(admin_page.get_by_text("No report matches.")).to_be_visible()
            # The closed report, with its outcome, under "Acted on".
            form = admin_page.get_by_role("form", name="Filter reports")
            await form.get_by_label("State").select_option(label="Acted on")
            await form.get_by_role("button", name="Show reports").click()
            await expect(item).to_contain_text("actioned (end_broadcast)")
            await expect(item.get_by_role("button")).to_have_count(0)
            await checked(desk, shots, "admin-report-closed")

            # The reporter reads what came of it, and marks it read.
            await page.goto("/account")
            notes = page.get_by_role("list", name="Notifications, newest first")
            await expect(notes.get_by_role("listitem")).to_have_text(
                re.compile(
                    r"^Your report of a stream was acted on: the broadcast was ended\..*new"
                    r"Mark as read$"
                )
            )
            await checked(viewer, shots, "account-notification")
            await notes.get_by_role("button", name="Mark as read").click()
            await expect(notes.get_by_role("button", name="Mark as read")).to_have_count(0)
            await expect(notes.get_by_role("listitem")).to_contain_text("· read")
    finally:
        if talker is not None:
            await talker.close()
        await pub.close()
    [note] = await _notifications(client, fan["token"])
    assert note["outcome"] == "end_broadcast" and note["read"] is True
    row = await db.pool.fetchrow(
        "SELECT details FROM audit_log WHERE action = 'report.end_broadcast' ORDER BY id DESC"
    )
    assert row is not None and "Violence, terms 4.2" in row["details"]


async def test_an_admin_deletes_a_reported_chat_line_and_dismisses_a_report(
    client: Client, db: Database, chromium: Chromium, shots: Path
) -> None:
    await admin(client, db)
    cam = await user(client, "cam", creator=True)
    fan = await user(client, "fan")
    bob = await user(client, "bob")
    await user(client, "carol")
    await create_stream(client, cam["token"], "chat-room", title="Chat room")
    talker = await connect(client, "chat-room", bob["token"])
    try:
        acks = [await talker.say(t, t) for t in ("first line", "a nasty line", "last line")]
    finally:
        await talker.close()
    for body in (
        {"target_kind": "line", "stream": "chat-room", "line_id": acks[1]["id"],
         "category": "harassment_or_hate", "note": "insults"},
        {"target_kind": "stream", "stream": "chat-room", "category": "spam"},
    ):  # fmt: skip
        resp = await client.post("/api/v1/reports", json=body, headers=bearer(fan["token"]))
        assert resp.status == 201, await resp.text()
    async with (
        chromium.tab(str(client.make_url("/"))) as tab,
        chromium.tab(str(client.make_url("/"))) as other,
    ):
        # carol reports the same line to the stream's moderators, from the chat's line menu.
        carol_page = other.page
        await log_in(carol_page, "carol@example.com")
        await carol_page.goto("/watch/chat-room")
        chat = carol_page.get_by_role("region", name="Chat")
        nasty = chat.locator(".chat-log .line.chat").filter(has_text="a nasty line")
        await nasty.hover()
        await nasty.get_by_role("button", name="Actions for bob's line").click()
        await carol_page.get_by_role("button", name="Report", exact=True).click()
        await expect(chat.locator(".chat-notice")).to_have_text(
            "Reported: the moderators will look at it."
        )
        page = tab.page
        await log_in(page, "root@example.com")
        await page.goto("/admin")
        reports = page.get_by_role("list", name="Reports, oldest first")
        await expect(reports.get_by_role("listitem", name=re.compile("^Report"))).to_have_count(2)
        form = page.get_by_role("form", name="Filter reports")
        await form.get_by_label("Reported").select_option(label="Chat lines")
        await form.get_by_role("button", name="Show reports").click()
        item = reports.get_by_role("listitem", name=re.compile(r"^Report \d+: a chat line"))
        await expect(reports.get_by_role("listitem", name=re.compile("^Report"))).to_have_count(1)
        lines = item.get_by_role("list", name="The line and its neighbours")
        await expect(lines.get_by_role("listitem")).to_have_text(
            [re.compile(t) for t in ("first line", "a nasty line", "last line")]
        )
        await expect(item).to_contain_text("Reported line: bob: a nasty line")
        await expect(item).to_contain_text(f"History of bob (account {bob['user']['id']})")
        # A line cannot have its broadcast ended or be taken down from here.
        await expect(item.get_by_role("button", name="End broadcast")).to_have_count(0)
        await expect(item.get_by_role("button", name="Time out")).to_be_visible()
        await expect(item.get_by_role("button", name="Ban")).to_be_visible()
        await checked(tab, shots, "admin-report-line")
        await item.get_by_role("button", name="Delete line").click()
        await expect(page.get_by_role("status")).to_have_text(
            "Deleted a chat line in Chat room. Closed 1 report."
        )
        await expect(page.get_by_role("heading", name="Reports")).to_be_focused()
        await expect(page.get_by_text("No report matches.")).to_be_visible()
        # The stream's report: dismissed.
        await form.get_by_label("Reported").select_option(label="Anything")
        await form.get_by_role("button", name="Show reports").click()
        stream_item = reports.get_by_role("listitem", name=re.compile(r"the stream Chat room$"))
        await expect(stream_item).to_contain_text("Spam · Filed by a user")
        await stream_item.get_by_role("button", name="Dismiss").click()
        await expect(page.get_by_role("status")).to_have_text(
            "Dismissed the report on the stream Chat room. Closed 1 report."
        )
        await expect(page.get_by_text("No report matches.")).to_be_visible()
        await checked(tab, shots, "admin-reports-empty")
        # A report filed while the console is open appears in it by itself, at its next look.
        async with page.expect_response(lambda r: "/api/v1/admin/reports?" in r.url):
            resp = await client.post(
                "/api/v1/reports", json={"target_kind": "user", "user_id": bob["user"]["id"],
                                         "category": "other", "note": "ban evasion"},
                headers=bearer(fan["token"]),
            )  # fmt: skip
            assert resp.status == 201, await resp.text()
        await expect(reports.get_by_role("listitem", name=re.compile(r": bob$"))).to_contain_text(
            "ban evasion"
        )
        # The platform's decision closed carol's report to the moderators too, and says so.
        await carol_page.goto("/account")
        notes = carol_page.get_by_role("list", name="Notifications, newest first")
        await expect(notes.get_by_role("listitem")).to_contain_text(
            "Your report to the stream's moderators of a chat line was acted on:"
            " the line was deleted."
        )
    _, root = await login(client, "root")  # a session made after the role was
    resp = await client.get(
        "/api/v1/admin/reports?state=all&target_kind=line", headers=bearer(root["token"])
    )
    [line_report] = (await resp.json())["reports"]
    assert line_report["outcome"] == "delete_line"
    assert line_report["context"]["line"]["deleted"] is True
    outcomes = sorted(n["outcome"] for n in await _notifications(client, fan["token"]))
    assert outcomes == ["delete_line", "dismiss"]
