"""Render HLS playlists (RFC 8216, with the LL-HLS additions of draft-pantos-hls-rfc8216bis).

Pure functions from `state` values to text; imports nothing from livecore outside hls/
but recordings.playlist (a recording's VOD playlist lives there).
Every URI is `prefix + name + uri_query`: `prefix` is "" (relative) or an absolute base such
as the CDN's, and `uri_query` ("?token=...") is appended for signed playback later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from livecore.hls.state import MediaState, Segment, VariantInfo
from livecore.recordings.layout import init_name

# One rule for every playlist's EXT-X-TARGETDURATION, live or recorded: re-exported here.
from livecore.recordings.playlist import target_duration as target_duration

# Parts are listed for the last few segments only (RFC 8216bis 4.4.4.9: older parts SHOULD be
# removed once more than three target durations from the live edge).
PART_SEGMENTS_LISTED = 3


def _uri(prefix: str, name: str, uri_query: str) -> str:
    return prefix + name + uri_query


def _quoted_uri(prefix: str, name: str, uri_query: str) -> str:
    return '"' + _uri(prefix, name, uri_query) + '"'


def _pdt(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")


def _decimal(value: float) -> str:
    return f"{value:.5f}".rstrip("0").rstrip(".") if value else "0"


def render_multivariant(
    variants: Sequence[VariantInfo], *, uri_query: str = "", independent: bool = True
) -> str:
    """The multivariant (master) playlist listing every rendition; `independent`: every
    segment of every rendition starts with a keyframe."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:9"]
    if independent:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    for v in variants:
        attrs = [f"BANDWIDTH={v.bandwidth}"]
        if v.average_bandwidth is not None:
            attrs.append(f"AVERAGE-BANDWIDTH={v.average_bandwidth}")
        attrs.append(f'CODECS="{v.codecs}"')
        if v.width and v.height:
            attrs.append(f"RESOLUTION={v.width}x{v.height}")
        if v.frame_rate:
            attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(v.uri + uri_query)
    return "\n".join(lines) + "\n"


def render_media(
    state: MediaState, *, prefix: str = "", uri_query: str = "", low_latency: bool = True
) -> str:
    """A media playlist; `low_latency=False` leaves out every LL-HLS tag (recordings)."""
    lines = _header(
        state.target_duration_s, state.media_sequence, state.discontinuity_sequence,
        part_target_s=state.part_target_s if low_latency else None, vod=state.ended,
        independent=state.independent_segments, part_hold_back_parts=state.part_hold_back_parts,
    )  # fmt: skip
    segments = state.segments if low_latency else tuple(s for s in state.segments if s.complete)
    complete = [s for s in segments if s.complete]
    with_parts = {s.msn for s in complete[-PART_SEGMENTS_LISTED:]}
    previous: Segment | None = None
    for seg in segments:
        parts = low_latency and (not seg.complete or seg.msn in with_parts)
        lines += _segment(seg, previous, prefix, uri_query, parts=parts)
        previous = seg
    if low_latency and state.preload_hint is not None and not state.ended:
        msn, index = state.preload_hint
        uri = _quoted_uri(prefix, f"part-{msn}-{index}.m4s", uri_query)
        lines.append(f"#EXT-X-PRELOAD-HINT:TYPE=PART,URI={uri}")
    if state.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _header(
    td: int,
    media_sequence: int,
    discontinuity_sequence: int,
    *,
    part_target_s: float | None,
    vod: bool,
    independent: bool,
    part_hold_back_parts: float = 3.0,
) -> list[str]:
    """The tags before the first segment; `part_target_s` None: no LL-HLS tags."""
    low_latency = part_target_s is not None
    lines = ["#EXTM3U", "#EXT-X-VERSION:9" if low_latency else "#EXT-X-VERSION:7"]
    lines.append(f"#EXT-X-TARGETDURATION:{td}")
    if not low_latency and vod:
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}")
    if discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    if independent:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    if part_target_s is not None:
        # PART-HOLD-BACK: at least twice the part target (the config's bound), three times
        # recommended; HOLD-BACK: at least three target durations (RFC 8216bis 4.4.3.8).
        hold_back = _decimal(part_hold_back_parts * part_target_s)
        lines.append(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
            f"PART-HOLD-BACK={hold_back},HOLD-BACK={_decimal(3 * td)}"
        )
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={_decimal(part_target_s)}")
    return lines


def _segment(
    seg: Segment, previous: Segment | None, prefix: str, uri_query: str, *, parts: bool
) -> list[str]:
    """One segment's lines (with its parts when `parts`), after `previous`."""
    lines = []
    if previous is not None and seg.discontinuity:
        lines.append("#EXT-X-DISCONTINUITY")
    if previous is None or seg.init != previous.init:
        lines.append(f"#EXT-X-MAP:URI={_quoted_uri(prefix, init_name(seg.init), uri_query)}")
    if previous is None or seg.discontinuity:
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(seg.program_date_time)}")
    if parts:
        for part in seg.parts:
            attrs = f"DURATION={_decimal(part.duration_s)},URI="
            attrs += _quoted_uri(prefix, part.uri, uri_query)
            if part.independent:
                attrs += ",INDEPENDENT=YES"
            lines.append("#EXT-X-PART:" + attrs)
    if seg.complete:
        lines.append(f"#EXTINF:{seg.duration_s:.5f},")
        lines.append(_uri(prefix, seg.uri, uri_query))
    return lines


def segment_cut_s(segment_target_s: float) -> float:
    """A segment ends at the first keyframe once it is this long. The publisher is asked for
    that keyframe here, and has until `segment_limit_s` (a second later) to send it: a
    browser answers within a round trip and a frame, even on a busy machine."""
    return max(segment_target_s / 2, segment_limit_s(segment_target_s) - 1.0)


def segment_limit_s(segment_target_s: float) -> float:
    """A segment must stay shorter than this: at or above it, its duration would round to
    more than the target duration the playlist announces (RFC 8216 4.3.3.1)."""
    return max(1, math.ceil(segment_target_s)) + 0.5
