"""A broadcast's first viewers: Chromium publishes its fake camera over WHIP (as the studio's
"Go live" does: H.264 from a browser encoder that sends keyframes only when asked), and
hls.js in another tab starts the moment the publish is answered, as a premiere's audience
does. FFmpeg reads the same live HLS."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from tests.conftest import Client, bearer, register
from tests.support.media import hls_video_packets
from tests.web.browser import Chromium

# A page of the test's own (answered by Playwright, never by livecore) with livecore's hls.js.
_PLAYER_PATH = "/__test/player"
_PLAYER = """<!doctype html>
<meta charset="utf-8"><title>player</title>
<video id="v" muted autoplay playsinline></video>
<script src="/static/vendor/hls.min.js"></script>
<script>
window.errors = [];
window.play = (source) => {
  const v = document.getElementById("v");
  const hls = new Hls({ lowLatencyMode: true });  // as /watch plays live streams
  hls.on(Hls.Events.ERROR, (_e, d) => window.errors.push({ details: d.details, fatal: d.fatal }));
  hls.loadSource(source);
  hls.attachMedia(v);
  v.play().catch(() => {});
};
</script>
"""

_GO_LIVE = """async ([url, key]) => {
  const { publish } = await import("/static/whip.js");
  const camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  window.session = await publish(url, key, camera);
  return window.session.h264;
}"""


async def _segments_listed(client: Client, path: str, want: int) -> str:
    """The playlist once it lists the broadcast's first `want` segments complete."""
    playlist = await (await client.get(path)).text()
    first = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist)[1])  # type: ignore[index]
    for msn in range(first, first + want):
        resp = await client.get(f"{path}?_HLS_msn={msn}")  # held until segment msn is complete
        assert resp.status == 200, await resp.text()
        playlist = await resp.text()
    return playlist


async def test_hlsjs_started_at_go_live_plays_a_browser_publish(
    client: Client, chromium: Chromium
) -> None:
    creator = await register(client, "premiere@example.com", creator=True)
    resp = await client.post(
        "/api/v1/streams", json={"slug": "premiere"}, headers=bearer(creator["token"])
    )
    key = (await resp.json())["stream_key"]
    base = str(client.make_url("/")).rstrip("/")
    async with chromium.tab(base) as studio, chromium.tab(base) as audience:
        viewer = audience.page
        await viewer.route(f"{base}{_PLAYER_PATH}", lambda route: route.fulfill(
            status=200, content_type="text/html", body=_PLAYER))  # fmt: skip
        await viewer.goto(_PLAYER_PATH)
        await studio.page.goto("/")
        h264 = await studio.page.evaluate(_GO_LIVE, [f"{base}/whip/premiere", key])
        assert h264, "this Chromium cannot send H.264"
        # The publish is answered: the audience starts now, before any segment exists.
        await viewer.evaluate("(src) => window.play(src)", "/hls/premiere/master.m3u8")
        playing = "() => document.getElementById('v').currentTime > 2"
        playing += " || window.errors.some((e) => e.fatal)"
        await viewer.wait_for_function(playing, timeout=30_000)
        errors: list[dict[str, Any]] = await viewer.evaluate("window.errors")
        assert not [e for e in errors if e["fatal"]], json.dumps(errors)
        assert not [e for e in errors if e["details"] == "levelEmptyError"], json.dumps(errors)

        # Every segment starts at a keyframe the browser sent when asked (from the first
        # seconds of the call on), within the target duration; FFmpeg reads them.
        playlist = await _segments_listed(client, "/hls/premiere/source/index.m3u8", 4)
        target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", playlist)[1])  # type: ignore[index]
        durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", playlist)]
        assert all(round(d) <= target for d in durations), playlist
        assert "#EXT-X-INDEPENDENT-SEGMENTS" in playlist, playlist
        seen = await asyncio.to_thread(hls_video_packets, f"{base}/hls/premiere/master.m3u8", 3.0)
        assert seen and seen[0][1], "FFmpeg's first video packet is not a keyframe"
        await studio.page.evaluate("window.session.stop()")
