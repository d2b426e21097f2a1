"""Checking a publisher's or viewer's SDP offer before any peer connection exists."""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.sdp import SessionDescription


class OfferError(Exception):
    """The offer cannot be used; `malformed` tells a syntax error (400) from a refusal (422)."""

    def __init__(self, message: str, *, malformed: bool) -> None:
        super().__init__(message)
        self.malformed = malformed


@dataclass(frozen=True, slots=True)
class OfferSummary:
    kinds: tuple[str, ...]  # "audio"/"video" per m-line, in offer order
    has_h264: bool
    has_vp8: bool
    has_opus: bool


def _codec_names(media: object) -> set[str]:
    rtp = getattr(media, "rtp", None)
    return {str(c.name).lower() for c in getattr(rtp, "codecs", [])}


def _h264_packetization_1(media: object) -> bool:
    rtp = getattr(media, "rtp", None)
    for codec in getattr(rtp, "codecs", []):
        if (
            str(codec.name).lower() == "h264"
            and str(codec.parameters.get("packetization-mode", "0")) == "1"
        ):
            return True
    return False


def inspect_offer(sdp: str, *, want: str, vp8: bool = False) -> OfferSummary:
    """Parse an offer and check it carries something livecore can take.

    `want` is "publish" (the peer sends media to us) or "play" (we send to the peer);
    `vp8` accepts a publisher's VP8 when it has no H.264 (it will be transcoded).
    """
    if "\x00" in sdp or not sdp.lstrip().startswith("v=0"):
        raise OfferError("the body is not an SDP offer (it must start with v=0)", malformed=True)
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the bad line provokes
        raise OfferError(f"malformed SDP: {exc.__class__.__name__}", malformed=True) from None
    media = [m for m in parsed.media if m.kind in ("audio", "video")]
    if not media:
        raise OfferError("the offer has no audio or video section", malformed=False)
    for m in media:
        if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
            raise OfferError(f"the {m.kind} section has no ICE credentials", malformed=True)
        if m.dtls is None or not m.dtls.fingerprints:
            raise OfferError(f"the {m.kind} section has no DTLS fingerprint", malformed=True)
        if want == "publish" and m.direction not in ("sendonly", "sendrecv"):
            raise OfferError(f"the {m.kind} section does not send media", malformed=False)
        if want == "play" and m.direction not in ("recvonly", "sendrecv"):
            raise OfferError(f"the {m.kind} section does not receive media", malformed=False)
    video = [m for m in media if m.kind == "video"]
    audio = [m for m in media if m.kind == "audio"]
    has_h264 = any(_h264_packetization_1(m) for m in video)
    has_vp8 = any("vp8" in _codec_names(m) for m in video)
    has_opus = any("opus" in _codec_names(m) for m in audio)
    if video and not has_h264 and not (vp8 and has_vp8):
        offered = ", ".join(sorted(set().union(*(_codec_names(m) for m in video)))) or "none"
        raise OfferError(
            f"no usable video codec: livecore takes H.264 (packetization-mode 1); offered: "
            f"{offered}",
            malformed=False,
        )
    if audio and not has_opus:
        raise OfferError("no usable audio codec: livecore takes Opus", malformed=False)
    return OfferSummary(tuple(m.kind for m in media), has_h264, has_vp8, has_opus)
