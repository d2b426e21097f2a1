"""The watch page's "Low latency" switch in headless Chromium: the live stream plays over
WHEP (WebRTC from livecore, on loopback only) with the playback token of a subscriber-only
stream, ends its session when switched back to HLS, and falls back to HLS with the reason
in words when the server refuses (here: no WebRTC viewers allowed on this node)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from playwright.async_api import Locator, Page, Request, expect

from livecore.appkeys import VIEWERS
from livecore.config import Config
from tests.conftest import Client, MakeClient, create_stream, register
from tests.support.rtc import publishing
from tests.web.browser import LOOPBACK, Chromium, Tab, candidate_addresses
from tests.web.steps import checked, log_in


async def _stream(client: Client, slug: str, **fields: str) -> str:
    """Make a stream of a new creator, Host; returns its stream key."""
    host = await register(client, "host@example.com", creator=True, display_name="Host")
    return await create_stream(client, host["token"], slug, **fields)


@asynccontextmanager
async def _live(client: Client, slug: str, **fields: str) -> AsyncIterator[None]:
    async with publishing(client, slug, await _stream(client, slug, **fields)):
        yield


async def _whep_deletes(client: Client) -> float:
    """How many DELETEs of WHEP sessions the server was sent (any answer), from its own
    request metrics."""
    metrics = await (await client.get("/metrics")).text()
    wanted = 'livecore_http_requests_total{method="DELETE",route="/whep/{stream}/{session}"'
    found = [line for line in metrics.splitlines() if line.startswith(wanted)]
    return sum(float(line.split()[-1]) for line in found)


def _note(page: Page) -> Locator:
    """What the page says about low latency, next to the switch."""
    return page.locator(".player-options").get_by_role("status")


async def _src(page: Page) -> str:
    src: str = await page.evaluate("() => document.getElementById('video').currentSrc")
    return src


async def _frames_advance(page: Page) -> None:
    """The <video> shows a moving picture: frames are decoded and its clock runs."""
    before = await page.evaluate(
        """() => { const v = document.getElementById("video");
                   return [v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames]; }"""
    )
    await page.wait_for_function(
        """([t, frames]) => { const v = document.getElementById("video");
             return v.currentTime > t + 1
               && v.getVideoPlaybackQuality().totalVideoFrames > frames + 10; }""",
        arg=before,
        timeout=30_000,
    )


async def test_low_latency_switch_plays_over_whep_and_back_to_hls(
    client: Client, chromium: Chromium, shots: Path
) -> None:
    key = await _stream(client, "club", title="Members' night", visibility="subscribers")
    async with chromium.tab(str(client.make_url("/"))) as tab:
        page = tab.page
        async with publishing(client, "club", key):
            await _plays_over_whep_and_back(client, tab, shots)
        # The broadcast ends: the page says so, and the switch stays on for the next one
        # (the session that ended with it is no failure of low latency).
        await expect(page.locator("#message")).to_have_text("This stream is offline.")
        switch = page.locator("#low-latency")
        assert await switch.is_checked()
        assert "lost" not in (await page.locator(".player-options").inner_text())
        async with publishing(client, "club", key):
            await expect(switch).to_be_visible(timeout=15_000)
            await _frames_advance(page)
            assert await _webrtc(page)


async def _webrtc(page: Page) -> bool:
    """Whether the video plays a WebRTC stream (not hls.js)."""
    found: bool = await page.evaluate(
        "() => document.getElementById('video').srcObject instanceof MediaStream"
    )
    return found


async def _plays_over_whep_and_back(client: Client, tab: Tab, shots: Path) -> None:
    """Play the live stream over WHEP, back over HLS, and over WHEP again after a reload."""
    page = tab.page
    receivable = await page.evaluate(
        "() => RTCRtpReceiver.getCapabilities('video').codecs.map((c) => c.mimeType)"
    )
    assert "video/H264" in receivable, f"this Chromium cannot receive H.264: {receivable}"
    await log_in(page, "host@example.com")  # the owner may watch the subscriber stream
    await page.goto("/watch/club")
    switch = page.get_by_role("switch", name="Low latency")
    await expect(switch).not_to_be_checked()
    await page.wait_for_function("() => document.getElementById('video').currentTime > 0.5")
    assert (await _src(page)).startswith("blob:")  # hls.js first

    whep_posts: list[Request] = []
    page.on("request", lambda r: whep_posts.append(r) if "/whep/" in r.url else None)
    await switch.check()
    await expect(_note(page)).to_have_text("Playing with low latency (WebRTC).")
    await _frames_advance(page)
    # WebRTC into the <video>, not hls.js; the playback token went with the offer.
    assert await _webrtc(page)
    (post,) = [r for r in whep_posts if r.method == "POST"]
    assert (await post.all_headers())["authorization"].startswith("Bearer ")
    assert client.app[VIEWERS].count == 1
    assert tab.offers and all(
        a == LOOPBACK for offer in tab.offers for a in candidate_addresses(offer)
    )
    pairs = await tab.selected_pairs()
    assert pairs and all(p["local"] == LOOPBACK and p["remote"] == LOOPBACK for p in pairs)
    await checked(tab, shots, "watch-low-latency")

    # Back to HLS: the WHEP session is ended with a DELETE on its Location.
    async with page.expect_response(
        lambda r: r.request.method == "DELETE" and "/whep/club/" in r.url
    ) as deleted:
        await switch.uncheck()
    assert (await deleted.value).status == 200
    assert client.app[VIEWERS].count == 0
    await page.wait_for_function(
        "() => document.getElementById('video').currentSrc.startsWith('blob:')"
    )
    await _frames_advance(page)

    # The choice is remembered: a reload plays over WHEP straight away. Leaving the page
    # ends its session (a DELETE that outlives the page).
    await switch.check()
    await _frames_advance(page)
    deletes = await _whep_deletes(client)
    await page.reload()
    await expect(page.get_by_role("switch", name="Low latency")).to_be_checked()
    await _frames_advance(page)
    assert await _webrtc(page)
    # The new page's session alone is left, and the old page sent its DELETE as it went away
    # (Playwright does not report requests a page sends as it goes away). That DELETE may
    # land after the new page plays, and after the server has ended the session itself on
    # seeing the connection close (then it answers 404): both are waited for, bounded.
    async with asyncio.timeout(10):
        while await _whep_deletes(client) < deletes + 1 or client.app[VIEWERS].count != 1:  # noqa: ASYNC110 (the server's state is read, nothing could be awaited instead)
            await asyncio.sleep(0.1)
    assert client.app[VIEWERS].count == 1


async def test_low_latency_falls_back_to_hls_and_says_why_when_whep_is_refused(
    make_client: MakeClient, config: Config, chromium: Chromium, shots: Path
) -> None:
    client = await make_client(sfu=replace(config.sfu, max_viewers=0))
    async with (
        _live(client, "packed", title="Packed house"),
        chromium.tab(str(client.make_url("/"))) as tab,
    ):
        page = tab.page
        await page.goto("/watch/packed")
        switch = page.get_by_role("switch", name="Low latency")
        async with page.expect_response(lambda r: "/whep/packed" in r.url) as refused:
            await switch.check()
        assert (await refused.value).status == 503
        await expect(_note(page)).to_have_text(
            "Low latency is not available: this server already has as many low-latency viewers"
            " as it can take. Playing with standard latency (HLS) instead."
        )
        await expect(switch).not_to_be_checked()
        await _frames_advance(page)
        assert (await _src(page)).startswith("blob:")
        await checked(tab, shots, "watch-low-latency-refused")
        await page.emulate_media(color_scheme="dark")
        await checked(tab, shots, "watch-low-latency-refused-dark")
        assert not tab.csp_violations(), tab.console_errors


async def test_low_latency_falls_back_to_hls_when_the_connection_is_lost(
    client: Client, chromium: Chromium
) -> None:
    async with (
        _live(client, "flaky", title="Flaky"),
        chromium.tab(str(client.make_url("/"))) as tab,
    ):
        page = tab.page
        await page.goto("/watch/flaky")
        async with page.expect_response(
            lambda r: r.request.method == "POST" and "/whep/flaky" in r.url
        ) as created:
            await page.get_by_role("switch", name="Low latency").check()
        session_id = (await (await created.value).header_value("location") or "").split("/")[-1]
        await _frames_advance(page)
        # The server drops the session (as a node going away would), the stream stays live:
        # no more media and no more ICE answers, until the browser calls it lost.
        assert await client.app[VIEWERS].stop(session_id)
        await expect(_note(page)).to_have_text(
            "The low-latency connection was lost. Playing with standard latency (HLS) instead.",
            timeout=30_000,
        )
        await expect(page.get_by_role("switch", name="Low latency")).not_to_be_checked()
        await page.wait_for_function(
            "() => document.getElementById('video').currentSrc.startsWith('blob:')"
        )
        await _frames_advance(page)
        assert not tab.csp_violations(), tab.console_errors
