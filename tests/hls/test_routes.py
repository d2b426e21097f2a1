from __future__ import annotations

import asyncio
import re

from livecore.recordings.layout import part_name
from tests.hls.conftest import CONFIG, Broadcast, Client, Env
from tests.hls.probe import assert_continuous, probe
from tests.support.media import clip

PLAYLIST = "application/vnd.apple.mpegurl"


async def _ended(env: Env) -> Broadcast:
    b = env.broadcast()
    await b.publish(clip(4.0).interleaved())
    await b.packager.wait_closed()
    return b


def _url(client: Client, path: str) -> str:
    return str(client.make_url(path))


async def test_live_stream_plays_over_http_and_joins_at_keyframes(env: Env, client: Client) -> None:
    c = clip(6.0)
    b = env.broadcast()
    b.start_publishing(c.interleaved(), speed=1.0)
    await b.packager.wait_for(1, 0)
    resp = await client.get("/hls/demo/source/index.m3u8")
    first = await resp.text()
    assert resp.status == 200 and resp.content_type == PLAYLIST
    assert "#EXT-X-ENDLIST" not in first and "#EXT-X-PRELOAD-HINT:TYPE=PART" in first
    assert "#EXT-X-PART:" in first and "INDEPENDENT=YES" in first
    master = _url(client, "/hls/demo/master.m3u8")
    early = asyncio.create_task(asyncio.to_thread(probe, master))
    await b.packager.wait_for(3, 0)
    second = await (await client.get("/hls/demo/source/index.m3u8")).text()
    assert second.count("#EXTINF") > first.count("#EXTINF")  # the live playlist grows
    late = asyncio.create_task(asyncio.to_thread(probe, master))
    for result in await asyncio.gather(early, late):
        assert (result.video_codec, result.audio_codec) == ("h264", "aac")
        assert (result.width, result.height) == (640, 360)
        assert result.video[0][1], "a reader joining mid-stream starts at a keyframe"
        assert_continuous([t for t, _ in result.video], 1 / 30)
        assert_continuous(list(result.audio), 1024 / 48000)
    early_r, late_r = early.result(), late.result()
    assert early_r.video_span_s >= late_r.video_span_s > 0


async def test_blocking_reload_answers_when_the_part_appears(env: Env, client: Client) -> None:
    b = env.broadcast()
    b.start_publishing(clip(6.0).interleaved(), speed=1.0)
    await b.packager.wait_started()
    hint = b.packager.preload_hint
    assert hint is not None
    msn, index = hint
    resp = await client.get(f"/hls/demo/source/index.m3u8?_HLS_msn={msn}&_HLS_part={index}")
    assert resp.status == 200
    text = await resp.text()
    listed = re.findall(r'#EXT-X-PART:.*part-(\d+)-(\d+)\.m4s"', text)
    assert max((int(m), int(i)) for m, i in listed) >= (msn, index)
    # The hinted part itself is held until it is written, then served whole. (Once a GOP
    # has been seen, the hint also predicts the segment boundary.)
    await b.packager.wait_for(1, 1)
    hint = b.packager.preload_hint
    assert hint is not None
    part = await client.get(f"/hls/demo/source/{part_name(*hint)}")
    assert part.status == 200 and len(await part.read()) > 0
    live_msn = hint[0]
    too_far = await client.get(f"/hls/demo/source/index.m3u8?_HLS_msn={live_msn + 3}")
    assert too_far.status == 400
    assert (await too_far.json())["error"]["code"] == "bad_request"
    assert (await client.get("/hls/demo/source/index.m3u8?_HLS_part=1")).status == 400
    assert (await client.get("/hls/demo/source/index.m3u8?_HLS_msn=x")).status == 400


async def test_ended_stream_has_endlist_and_the_recording_plays_whole(
    env: Env, client: Client
) -> None:
    await _ended(env)
    resp = await client.get("/hls/demo/source/index.m3u8")
    text = await resp.text()
    assert text.rstrip().endswith("#EXT-X-ENDLIST") and "PRELOAD-HINT" not in text
    assert resp.headers["Cache-Control"] == "public, max-age=60"
    # A blocking request on an ended stream is answered at once.
    resp = await client.get("/hls/demo/source/index.m3u8?_HLS_msn=99")
    assert resp.status == 200
    result = await asyncio.to_thread(probe, _url(client, "/hls/demo/source/vod.m3u8"))
    assert len(result.video) == len(clip(4.0).video) and result.video[0][1]
    result = await asyncio.to_thread(probe, _url(client, "/hls/demo/master.m3u8"))
    assert len(result.video) == len(clip(4.0).video)


async def test_master_playlist_lists_the_source_rendition(env: Env, client: Client) -> None:
    await _ended(env)
    resp = await client.get("/hls/demo/master.m3u8")
    assert resp.status == 200 and resp.content_type == PLAYLIST
    text = await resp.text()
    line = next(x for x in text.splitlines() if x.startswith("#EXT-X-STREAM-INF:"))
    assert 'CODECS="avc1.42c01e,mp4a.40.2"' in line
    assert "RESOLUTION=640x360" in line and "FRAME-RATE=30.000" in line
    assert re.search(r"BANDWIDTH=\d+", line) and "AVERAGE-BANDWIDTH=" in line
    assert "source/index.m3u8" in text


async def test_caching_cors_etag_and_range(env: Env, client: Client) -> None:
    b = await _ended(env)
    seg = await client.get("/hls/demo/source/seg-0.m4s")
    body = await seg.read()
    assert seg.status == 200 and seg.content_type == "video/iso.segment"
    assert seg.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert seg.headers["Access-Control-Allow-Origin"] == "*" and "ETag" in seg.headers
    assert body == await asyncio.to_thread((b.directory / "seg-0.m4s").read_bytes)
    init = await client.get("/hls/demo/source/init-0.mp4")
    assert init.status == 200 and init.content_type == "video/mp4"
    ranged = await client.get("/hls/demo/source/seg-0.m4s", headers={"Range": "bytes=0-99"})
    assert ranged.status == 206 and await ranged.read() == body[:100]
    last = b.packager.segments[-1].msn  # an ended broadcast keeps its last parts on disk
    part = await client.get(f"/hls/demo/source/part-{last}-1.m4s")
    assert part.status == 200 and part.headers["Cache-Control"].endswith("immutable")
    gone = await client.get("/hls/demo/source/part-0-1.m4s")  # its segment holds the bytes
    assert gone.status == 404
    playlist = await client.get("/hls/demo/source/index.m3u8")
    etag = playlist.headers["ETag"]
    again = await client.get("/hls/demo/source/index.m3u8", headers={"If-None-Match": etag})
    assert again.status == 304
    preflight = await client.options("/hls/demo/source/seg-0.m4s")
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "Range" in preflight.headers["Access-Control-Allow-Headers"]


async def test_ranges_and_conditionals_on_media_files(env: Env, client: Client) -> None:
    await _ended(env)
    url = "/hls/demo/source/seg-0.m4s"
    full = await client.get(url)
    body, etag = await full.read(), full.headers["ETag"]
    size = len(body)
    assert full.headers["Accept-Ranges"] == "bytes" and int(full.headers["Content-Length"]) == size
    for header, status, want, content_range in (
        ("bytes=0-99", 206, body[:100], f"bytes 0-99/{size}"),
        ("bytes=-100", 206, body[-100:], f"bytes {size - 100}-{size - 1}/{size}"),
        ("bytes=100-", 206, body[100:], f"bytes 100-{size - 1}/{size}"),
        (f"bytes=10-{size + 50}", 206, body[10:], f"bytes 10-{size - 1}/{size}"),
        (f"bytes={size}-", 416, b"", f"bytes */{size}"),
        ("bytes=5-2", 200, body, None),  # malformed: ignored
        ("bytes=0-1,4-5", 200, body, None),  # several ranges: the whole file instead
        ("items=0-1", 200, body, None),
    ):
        resp = await client.get(url, headers={"Range": header})
        assert resp.status == status, header
        assert await resp.read() == want, header
        assert resp.headers.get("Content-Range") == content_range, header
    # If-Range with another version: the whole (current) file, not a piece of it.
    other = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert other.status == 200 and await other.read() == body
    same = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert same.status == 206 and await same.read() == body[:10]
    cached = await client.get(url, headers={"If-None-Match": etag})
    assert cached.status == 304 and cached.headers["ETag"] == etag
    head = await client.head(url)
    assert head.status == 200 and int(head.headers["Content-Length"]) == size


async def test_parts_come_from_memory_and_a_playlist_version_is_rendered_once(
    env: Env, client: Client
) -> None:
    b = await _ended(env)
    url = "/hls/demo/source/part-1-0.m4s"
    answers = await asyncio.gather(*(client.get(url) for _ in range(20)))
    bodies = {await a.read() for a in answers}
    assert len(bodies) == 1 and all(a.status == 200 for a in answers)
    # Served from memory from now on, even with the file gone from the disk...
    await asyncio.to_thread((b.directory / "part-1-0.m4s").unlink)
    again = await client.get(url)
    assert again.status == 200 and await again.read() in bodies
    # ...while a file never read is looked for on disk: gone (retention) is a 404.
    await asyncio.to_thread((b.directory / "part-2-0.m4s").unlink)
    assert (await client.get("/hls/demo/source/part-2-0.m4s")).status == 404
    playlists = await asyncio.gather(
        *(client.get("/hls/demo/source/index.m3u8") for _ in range(10))
    )
    texts = {await p.text() for p in playlists}
    assert len(texts) == 1 and len({p.headers["ETag"] for p in playlists}) == 1


async def test_live_playlist_is_cached_about_one_part(env: Env, client: Client) -> None:
    b = env.broadcast()
    b.start_publishing(clip(6.0).interleaved(), speed=1.0)
    await b.packager.wait_started()
    resp = await client.get("/hls/demo/source/index.m3u8")
    assert resp.headers["Cache-Control"] == f"public, max-age={max(1, round(CONFIG.part_target_s))}"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_unknown_streams_files_and_traversal_are_404(env: Env, client: Client) -> None:
    await _ended(env)
    resp = await client.get("/hls/nope/master.m3u8")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    for path in (
        "/hls/demo/other/index.m3u8",
        "/hls/demo/source/seg-999.m4s",
        "/hls/demo/source/..%2f..%2fetc%2fpasswd",
        "/hls/demo/source/..%2Fsource%2Fseg-0.m4s",
        "/hls/demo/source/.seg-0.m4s.tmp",
        "/hls/demo/source/seg-0.m4s%00",
        "/hls/demo/..%2f/index.m3u8",
    ):
        resp = await client.get(path)
        assert resp.status == 404, path


async def test_numbers_in_other_scripts_and_unknown_paths_are_4xx_json(
    env: Env, client: Client
) -> None:
    await _ended(env)
    # '²' passes str.isdigit() but int() refuses it; '٣' is a digit to int() but not ASCII.
    for query in ("_HLS_msn=%C2%B2", "_HLS_msn=%D9%A3", "_HLS_msn=0&_HLS_part=%C2%B2",
                  "_HLS_msn=99999999999999999999"):  # fmt: skip
        resp = await client.get(f"/hls/demo/source/index.m3u8?{query}")
        assert resp.status == 400, query
        assert (await resp.json())["error"]["code"] == "bad_request"
    for path in ("/hls/demo/source/part-0-%D9%A3.m4s", "/hls/demo/source/seg-%D9%A0.m4s",
                 "/hls/demo", "/hls/demo/source", "/hls/", "/hls/demo/a/b/c"):  # fmt: skip
        resp = await client.get(path)
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    preflight = await client.options("/hls/demo/source/seg-0.m4s")
    assert preflight.status == 204


async def test_metrics_count_requests(env: Env, client: Client) -> None:
    await _ended(env)
    await client.get("/hls/demo/source/index.m3u8")
    await client.get("/hls/demo/source/seg-0.m4s")
    value = env.registry.get_sample_value
    assert value("livecore_hls_requests_total", {"kind": "playlist"}) == 1.0
    assert value("livecore_hls_requests_total", {"kind": "segment"}) == 1.0
    assert (value("livecore_hls_part_production_lag_seconds_count") or 0) > 0


async def test_playlists_asked_at_go_live_wait_for_a_whole_segment(
    env: Env, client: Client
) -> None:
    """A player that arrives as the broadcast starts (a premiere's audience) is answered
    once the playlist lists a complete segment, not at the first part: hls.js gives up on a
    playlist of parts alone. A rung that has none yet is left out of the master playlist."""
    b = env.broadcast()
    starting = env.broadcast("starting")  # a rung with no media yet
    env.directory.streams["demo"]["360p"] = starting.packager
    master = asyncio.create_task(client.get("/hls/demo/master.m3u8"))
    media = asyncio.create_task(client.get("/hls/demo/source/index.m3u8"))
    b.start_publishing(clip(6.0).interleaved(), speed=1.0)
    await b.packager.wait_started()  # the first part is listed
    master_resp, media_resp = await master, await media
    assert (master_resp.status, media_resp.status) == (200, 200)
    playlist = await media_resp.text()
    assert "#EXTINF:" in playlist and "#EXT-X-PART:" in playlist, playlist
    variants = await master_resp.text()
    assert variants.count("#EXT-X-STREAM-INF:") == 1 and "source/index.m3u8" in variants
