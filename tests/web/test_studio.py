"""The studio in headless Chromium: log in, make a stream, rotate its key, go live with the
fake camera over WHIP (H.264, on loopback only), and stop."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import expect

from livecore.appkeys import HUBS
from livecore.sfu.media import MediaUnit
from tests.conftest import Client, bearer, register, wait_state
from tests.web.browser import LOOPBACK, Chromium, candidate_addresses

PASSWORD = "correct horse battery"


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


async def test_studio_goes_live_from_the_camera_with_h264(
    client: Client, chromium: Chromium
) -> None:
    creator = await register(client, "cam@example.com", creator=True, display_name="Cam")
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        caps = await page.evaluate(
            "() => RTCRtpSender.getCapabilities('video').codecs.map((c) => c.mimeType)"
        )
        assert "video/H264" in caps, f"this Chromium cannot send H.264: {caps}"

        await page.goto("/studio")
        login = page.locator("#login-form")
        await login.get_by_label("Email").fill("cam@example.com")
        await login.get_by_label("Password").fill("wrong password!")
        await login.get_by_role("button", name="Log in").click()
        await expect(page.locator("#error")).to_have_text("invalid email or password")
        await login.get_by_label("Password").fill(PASSWORD)
        await login.get_by_role("button", name="Log in").click()
        await expect(page.locator("#who")).to_have_text("Cam (creator)")
        await expect(page.locator("#error")).to_be_hidden()

        create = page.locator("#create-form")
        await create.get_by_label("Slug").fill("cam-show")
        await create.get_by_label("Title").fill("Camera show")
        await create.get_by_role("button", name="Create").click()
        await expect(page.locator("#selected-title")).to_have_text("Camera show")
        origin = str(client.make_url("/")).rstrip("/")
        await expect(page.locator("#server-url")).to_have_text(f"{origin}/whip/cam-show")
        first_key = await page.locator("#stream-key").text_content()
        assert first_key and first_key.startswith("lck_")

        # The key changes behind the page's back: going live shows the server's refusal.
        resp = await client.post("/api/v1/streams/cam-show/key", headers=bearer(creator["token"]))
        assert resp.status == 200
        await page.get_by_role("button", name="Go live").click()
        await expect(page.locator("#error")).to_have_text("invalid stream key")

        # "New key" rotates through the cookie session (with the CSRF header).
        await page.get_by_role("button", name="New key").click()
        await expect(page.locator("#stream-key")).not_to_have_text(first_key)
        await expect(page.locator("#error")).to_be_hidden()

        await page.get_by_role("button", name="Go live").click()
        await expect(page.locator("#status")).to_have_text("Live on cam-show (H.264).")
        await expect(page.locator("#error")).to_be_hidden()

        # Loopback only: the offers held no other address, and the pair in use is loopback.
        assert tab.offers and not tab.refused_offers
        for offer in tab.offers:
            assert all(a == LOOPBACK for a in candidate_addresses(offer)), offer
        pairs = await tab.selected_pairs()
        assert pairs and all(p["remote"] == LOOPBACK for p in pairs), pairs
        assert all(p["local"] in (LOOPBACK, None) for p in pairs), pairs

        await wait_state(client, "cam-show", "live")
        assert await _h264_keyframes(client, "cam-show", want=2, timeout_s=20) == 2

        # A viewer in another browser context plays the camera over LL-HLS with hls.js.
        async with chromium.tab(str(client.make_url("/"))) as viewer:
            await viewer.page.goto("/watch/cam-show")
            await expect(viewer.page.locator("#state")).to_have_text("live")
            advancing = "() => document.getElementById('video').currentTime > 2"
            await viewer.page.wait_for_function(advancing, timeout=30_000)
            assert not viewer.csp_violations(), viewer.console_errors

        await page.get_by_role("button", name="Stop").click()
        await expect(page.locator("#status")).to_have_text("Stopped: the stream is offline.")
        await wait_state(client, "cam-show", "offline")
        assert client.app[HUBS].by_slug("cam-show") is None

        # The broadcast's recording is listed (once packaged) with a link to watch it, and
        # the creator can delete it.
        recordings = page.locator("#my-recordings li")
        await expect(recordings).to_have_count(1, timeout=15_000)
        watch = recordings.first.get_by_role("link")
        await expect(watch).to_have_attribute(
            "href", re.compile(r"^/watch/cam-show\?recording=\d+$")
        )
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await recordings.first.get_by_role("button", name="Delete").click()
        await expect(recordings).to_have_count(0)
        await expect(page.locator("#no-recordings")).to_be_visible()
        listed = await (await client.get("/api/v1/streams/cam-show/recordings")).json()
        assert listed["recordings"] == []
        assert not tab.csp_violations(), tab.console_errors
