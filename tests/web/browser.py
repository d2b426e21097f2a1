"""Headless Debian Chromium driven by Playwright, with WebRTC held to 127.0.0.1.

No test traffic may reach any address of this machine but loopback. livecore's own ICE
candidates are restricted by the test config; Chromium's are kept off the network like this:

- `--webrtc-ip-handling-policy=default_public_interface_only` stops Chromium enumerating
  network interfaces. It then gathers no host candidates at all (no STUN server is given,
  and the policy withholds the default-route address), and pings livecore's 127.0.0.1
  candidates from a socket bound to the wildcard address, so the kernel sends from
  127.0.0.1 and livecore learns Chromium as a peer-reflexive 127.0.0.1 candidate. Without
  it Chromium offers every interface (eth0's addresses included), and livecore's checks to
  those would leave loopback. (`--force-webrtc-ip-handling-policy` is ignored by current
  Chromium, and none of the other policies keep loopback only.)
- `--disable-features=WebRtcHideLocalIpsWithMdns`: no mDNS names, so no multicast either.

Tests verify it: every WHIP and WHEP offer is checked before it reaches the server (a candidate
other than 127.0.0.1 is answered with a 422 by the test harness itself, which the page shows,
and fails the test), and once connected the
selected candidate pair must be 127.0.0.1 at both ends.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Route,
    ViewportSize,
    async_playwright,
)

CHROMIUM = Path(os.environ.get("LIVECORE_TEST_CHROMIUM", "/usr/bin/chromium"))
_ROOT = Path(__file__).resolve().parents[2]
# axe-core from npm (web/package.json), served to the page under this path by the test
# harness only: a same-origin script, which the pages' CSP allows.
AXE_JS = _ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
AXE_PATH = "/__test__/axe.min.js"
# Screenshots of every page and state the browser tests visit, per test.
ARTIFACTS = Path(os.environ.get("LIVECORE_TEST_ARTIFACTS", _ROOT / "var" / "test-artifacts"))
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=375, height=812)
LOOPBACK = "127.0.0.1"
LAUNCH_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--webrtc-ip-handling-policy=default_public_interface_only",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
)
TIMEOUT_MS = 20_000

# Remembers every RTCPeerConnection a page makes, so tests can read its SDP and stats.
_RECORD_PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  window.__peerConnections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      window.__peerConnections.push(this);
    }
  };
})();
"""

# The candidate pair each recorded connection uses, with the addresses at both ends.
_SELECTED_PAIRS = """
async () => {
  const pairs = [];
  for (const pc of window.__peerConnections || []) {
    if (pc.connectionState === "closed") continue;
    const stats = [...(await pc.getStats()).values()];
    const byId = new Map(stats.map((s) => [s.id, s]));
    for (const t of stats.filter((s) => s.type === "transport" && s.selectedCandidatePairId)) {
      const pair = byId.get(t.selectedCandidatePairId);
      const local = byId.get(pair.localCandidateId);
      const remote = byId.get(pair.remoteCandidateId);
      pairs.push({
        local: local.address ?? local.ip ?? null,
        localType: local.candidateType,
        remote: remote.address ?? remote.ip ?? null,
        remoteType: remote.candidateType,
      });
    }
  }
  return pairs;
}
"""


def chromium_missing() -> str:
    """Why the browser tests cannot run here, or "" when they can."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}: install the Debian package chromium"
    return ""


def candidate_addresses(sdp: str) -> list[str]:
    """The connection address of every `a=candidate` line (RFC 8839 §5.1)."""
    return [line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")]


@dataclass
class Tab:
    """A page with what the tests check about it."""

    page: Page
    offers: list[str] = field(default_factory=list)
    refused_offers: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    async def selected_pairs(self) -> list[dict[str, Any]]:
        pairs: list[dict[str, Any]] = await self.page.evaluate(_SELECTED_PAIRS)
        return pairs

    def csp_violations(self) -> list[str]:
        return [m for m in self.console_errors if "Content Security Policy" in m]

    async def axe(self) -> list[str]:
        """axe-core's serious and critical violations on the page as it is now."""
        page = self.page
        if not await page.evaluate("() => typeof window.axe === 'object'"):
            await page.add_script_tag(url=AXE_PATH)
        found: list[dict[str, Any]] = await page.evaluate(
            """async () => (await window.axe.run(document)).violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => ({id: v.id, impact: v.impact,
                              targets: v.nodes.map((n) => n.target.join(" ")).slice(0, 5)}))"""
        )
        return [f"{v['impact']} {v['id']}: {v['targets']}" for v in found]

    async def snapshot(self, directory: Path, name: str) -> None:
        """Save the page as a desktop and a 375 px wide phone would show it."""
        page = self.page
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        for label, size in (("desktop", DESKTOP), ("375px", PHONE)):
            await page.set_viewport_size(size)
            await page.screenshot(path=directory / f"{name}-{label}.png", full_page=True)
        await page.set_viewport_size(DESKTOP)


@dataclass
class Chromium:
    browser: Browser

    @asynccontextmanager
    async def tab(self, base_url: str) -> AsyncIterator[Tab]:
        """A fresh browser context (own cookies) and page on `base_url`."""
        context = await self.browser.new_context(base_url=base_url, viewport=DESKTOP)
        try:
            context.set_default_timeout(TIMEOUT_MS)
            await context.add_init_script(_RECORD_PEER_CONNECTIONS)
            tab = Tab(await context.new_page())
            tab.page.on("console", lambda m: _console(tab, m))
            tab.page.on("pageerror", lambda e: tab.console_errors.append(f"pageerror: {e}"))
            # WHIP (publishing) and WHEP (playing) offers alike.
            for pattern in ("**/whip/*", "**/whep/*"):
                await context.route(pattern, lambda route, req: _check_offer(tab, route, req))
            await context.route(f"**{AXE_PATH}", _serve_axe)
            yield tab
        finally:
            await context.close()


async def _serve_axe(route: Route) -> None:
    await route.fulfill(path=AXE_JS, content_type="text/javascript")


def _console(tab: Tab, message: ConsoleMessage) -> None:
    if message.type == "error":
        tab.console_errors.append(message.text)


async def _check_offer(tab: Tab, route: Route, request: Request) -> None:
    """Let a WHIP offer through only if every ICE candidate in it is on loopback."""
    if request.method == "POST":
        sdp = request.post_data or ""
        tab.offers.append(sdp)
        off_loopback = sorted({a for a in candidate_addresses(sdp) if a != LOOPBACK})
        if off_loopback:
            # Answered here, never sent to livecore; the page shows why (and the test fails).
            tab.refused_offers.append(sdp)
            message = f"test harness: offer has ICE candidates off loopback: {off_loopback}"
            body = json.dumps({"error": {"code": "off_loopback", "message": message}})
            await route.fulfill(status=422, content_type="application/json", body=body)
            return
    await route.continue_()


@asynccontextmanager
async def launch() -> AsyncIterator[Chromium]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(LAUNCH_ARGS), headless=True
        )
        try:
            yield Chromium(browser)
        finally:
            await browser.close()
