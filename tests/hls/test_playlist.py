from __future__ import annotations

import dataclasses
import random
import re

import pytest

from livecore.hls.h264 import codec_string, parameter_sets, picture_size
from livecore.hls.playlist import render_media, render_multivariant, target_duration
from livecore.hls.state import MediaState, Part, Segment, VariantInfo
from livecore.recordings.playlist import RecordingPlaylist
from tests.support.media import clip


def _segment(msn: int, *, complete: bool = True, parts: int = 2, init: int = 0,
             discontinuity: bool = False) -> Segment:  # fmt: skip
    return Segment(
        msn=msn,
        init=init,
        discontinuity=discontinuity,
        program_date_time=1_700_000_000.0 + msn,
        parts=tuple(Part(msn, i, 0.5, i == 0, 1000) for i in range(parts)),
        complete=complete,
    )


def _state(segments: list[Segment], *, ended: bool = False) -> MediaState:
    last = segments[-1]
    hint: tuple[int, int] | None = (
        (last.msn + 1, 0) if last.complete else (last.msn, len(last.parts))
    )
    if ended:
        hint = None
    return MediaState(tuple(segments), 1, 0.5, 0, ended, hint)


def test_live_media_playlist_has_ll_hls_tags_and_parts_near_the_edge() -> None:
    segs = [_segment(m) for m in range(10, 15)] + [_segment(15, complete=False, parts=1)]
    text = render_media(_state(segs))
    lines = text.splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-TARGETDURATION:1"]
    assert "#EXT-X-MEDIA-SEQUENCE:10" in lines
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,HOLD-BACK=3" in lines
    assert "#EXT-X-PART-INF:PART-TARGET=0.5" in lines
    assert lines.count('#EXT-X-MAP:URI="init-0.mp4"') == 1
    assert lines[-1] == '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-15-1.m4s"'
    parts = {int(m) for m in re.findall(r"#EXT-X-PART:.*part-(\d+)-", text)}
    assert parts == {12, 13, 14, 15}  # the last three complete segments and the open one
    assert '#EXT-X-PART:DURATION=0.5,URI="part-15-0.m4s",INDEPENDENT=YES' in lines
    assert [x for x in lines if x.startswith("seg-")] == [f"seg-{m}.m4s" for m in range(10, 15)]
    assert "#EXT-X-ENDLIST" not in text and "#EXT-X-GAP" not in text
    assert lines[lines.index("seg-10.m4s") - 1] == "#EXTINF:1.00000,"
    assert text.count("#EXT-X-PROGRAM-DATE-TIME:") == 1


def test_every_uri_gets_the_prefix_and_the_query() -> None:
    segs = [_segment(0), _segment(1, init=1, discontinuity=True), _segment(2, complete=False)]
    text = render_media(_state(segs), prefix="https://cdn.example/hls/a/source/", uri_query="?t=1")
    plain = [x for x in text.splitlines() if "m4s" in x and not x.startswith("#")]
    uris = re.findall(r'URI="([^"]+)"', text) + plain
    assert len(uris) > 6
    prefix = "https://cdn.example/hls/a/source/"
    assert all(u.startswith(prefix) and u.endswith("?t=1") for u in uris)
    assert "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:" in text
    assert text.count("#EXT-X-PROGRAM-DATE-TIME:") == 2


def test_ended_and_recording_playlists() -> None:
    segs = [_segment(0), _segment(1)]
    ended = render_media(_state(segs, ended=True))
    assert ended.endswith("#EXT-X-ENDLIST\n") and "PRELOAD-HINT" not in ended
    vod = render_media(_state(segs, ended=True), low_latency=False)
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and "#EXT-X-PART" not in vod
    assert "SERVER-CONTROL" not in vod and vod.endswith("#EXT-X-ENDLIST\n")


@pytest.mark.parametrize("seed", range(4))
def test_recording_playlist_built_segment_by_segment_is_the_ended_playlist(seed: int) -> None:
    rng = random.Random(seed)
    recording = RecordingPlaylist(segment_target_s=2.0)
    segments: list[Segment] = []
    init = 0
    for msn in range(rng.randrange(0, 50), 300):
        discontinuity = rng.random() < 0.05
        init += discontinuity and rng.random() < 0.5
        seg = _segment(msn, parts=rng.randrange(1, 8), init=init, discontinuity=discontinuity)
        segments.append(seg)
        recording.add(seg)
        if rng.random() < 0.1 or msn == 299:
            longest = max(s.duration_s for s in segments)
            whole = MediaState(tuple(segments), target_duration(longest, 2.0), 0.5, 0, True, None)
            assert recording.render() == render_media(whole, low_latency=False)
    with pytest.raises(ValueError):
        recording.add(_segment(300, complete=False))


def test_discontinuity_sequence_is_listed_when_not_zero() -> None:
    state = MediaState((_segment(5),), 2, 0.5, 3, False, (6, 0))
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:3" in render_media(state)


def test_multivariant_playlist() -> None:
    variants = [
        VariantInfo("source/index.m3u8", 2_500_000, 2_000_000, "avc1.64001f,mp4a.40.2",
                    1280, 720, 30.0),
        VariantInfo("audio/index.m3u8", 130_000, None, "mp4a.40.2", None, None, None),
    ]  # fmt: skip
    text = render_multivariant(variants, uri_query="?t=x")
    assert text.splitlines() == [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-STREAM-INF:BANDWIDTH=2500000,AVERAGE-BANDWIDTH=2000000,"
        'CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000',
        "source/index.m3u8?t=x",
        '#EXT-X-STREAM-INF:BANDWIDTH=130000,CODECS="mp4a.40.2"',
        "audio/index.m3u8?t=x",
    ]


def test_target_duration_covers_the_longest_segment() -> None:
    assert target_duration(0.0, 2.0) == 2
    assert target_duration(4.6, 2.0) == 5
    assert target_duration(0.4, 0.5) == 1


def test_codec_string_and_picture_size_from_the_sps() -> None:
    sets = parameter_sets(clip(1.0).video[0].data)
    assert sets is not None
    assert codec_string(sets[0]) == "avc1.42c01e"  # constrained baseline, level 3.0
    assert picture_size(sets[0]) == (640, 360)  # 368 coded lines, cropped
    assert parameter_sets(clip(1.0).video[1].data) is None


def test_part_hold_back_follows_the_setting() -> None:
    """Low-latency players sit PART-HOLD-BACK behind the newest part: three parts unless the
    operator chooses otherwise (never fewer than two)."""
    state = dataclasses.replace(_state([_segment(1)]), part_hold_back_parts=2.5)
    assert "PART-HOLD-BACK=1.25," in render_media(state)
