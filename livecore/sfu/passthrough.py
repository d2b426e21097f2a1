"""The one place livecore reaches below aiortc's public API (aiortc pinned at 1.16.0).

1. Pass-through "decoder": aiortc's receiver reassembles each encoded frame (jitter buffer,
   depayloading to Annex-B for H.264) and hands it to a decoder in a worker thread. We swap
   the decoder for one that returns the encoded frame untouched, so `track.recv()` yields
   `EncodedFrame`s and no video is ever decoded on the main path. aiortc looks the factory
   up as the module global `aiortc.rtcrtpreceiver.get_decoder`, so that is what we replace;
   this applies to every receiver in the process, which is what a pass-through server wants.
2. Keyframe requests: `RTCRtpReceiver._send_rtcp_pli(ssrc)` sends an RTCP PLI, to the media
   SSRC (the receiver's private RTX map tells the retransmission SSRCs apart).
3. Viewers' keyframe requests: aiortc's sender turns a PLI/FIR into a flag for its encoder,
   which pre-encoded media never reads; `forward_keyframe_requests` sends them to the hub.
4. UDP receive buffers: aioice opens the media sockets itself with a 256 KiB SO_RCVBUF
   taken from a module constant; `enlarge_receive_buffers` raises it so that a keyframe's
   burst of packets survives a busy event loop instead of being dropped by the kernel.
5. Inline delivery: aiortc hands each reassembled frame to its decoder thread, which hands it
   back to the loop for `track.recv()`: two thread hops and two queues per frame, which
   cost a publisher more than the rest of its receive path. `deliver_inline` replaces a
   receiver's decoder queue with a callable that gets each frame at once, on the loop,
   inside the receiver's packet handler; the decoder thread of such a receiver ends as soon
   as it starts (our `decoder_worker` stand-in sees the inline queue).
6. ICE host candidates: aioice enumerates interfaces in `aioice.ice.get_host_addresses`
   (skipping loopback); operators choose the advertised addresses, so we replace it when
   `sfu.ice_host_addresses` is set.
7. Rate counter after a pause: the receive-side bandwidth estimator's `RateCounter` empties
   its 1 ms buckets one millisecond at a time, so the first packet after a pause in a
   publisher's video (a camera turned off with `replaceTrack(null)`) held the loop ~50 ms
   per minute of pause. Past one window every bucket is empty, so `_erase_old` now gets
   there at once; the result is the same (tests compare it with aiortc's own).
8. DTLS role: to an `a=setup:actpass` offer, aiortc answers `active` (it becomes the DTLS
   client), and its ClientHello offers ECDSA cipher suites only, so a peer whose certificate
   is RSA (GStreamer's webrtcbin: whip-client, whipsink) refuses it: "no shared cipher".
   `answer_dtls_passive` sets the still-undecided transports to the server role
   (`RTCDtlsTransport._set_role`, what aiortc does itself for an `active` offer), so the
   answer says `passive`, as WHIP/WHEP servers usually do (RFC 8842 lets an answerer take
   either role; `active` would only save the wait for the answer, which a WHIP client has
   before ICE even starts). The peer's DTLS client then picks a suite for our ECDSA
   certificate, which every WebRTC stack accepts (browsers, OBS, GStreamer, aiortc).

tests/signaling/test_whip.py, test_whep.py and tests/sfu/test_publisher.py cover these over
real loopback peers; tests/signaling/test_whip_gstreamer.py covers 8 with GStreamer's
webrtcbin, tests/sfu/test_rate_counter.py covers 7.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aioice.turn
import aiortc.rate
import aiortc.rtcrtpreceiver
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.sdp import SessionDescription

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame as the receiver reassembled it."""

    codec: str  # lower-case codec name: "h264", "opus", "vp8"
    data: bytes  # H.264: Annex-B access unit
    timestamp: int  # RTP timestamp, rebased to 0 at the track's first packet, unwrapped
    clock_hz: int


class _PassthroughDecoder:
    """Duck-types aiortc.codecs.base.Decoder: returns the encoded frame itself."""

    def __init__(self, codec: Any) -> None:
        self._name = str(codec.name).lower()
        self._clock_hz = int(codec.clockRate)

    def decode(self, encoded_frame: Any) -> list[EncodedFrame]:
        return [
            EncodedFrame(self._name, bytes(encoded_frame.data), encoded_frame.timestamp,
                         self._clock_hz)
        ]  # fmt: skip


FrameSink = Callable[[EncodedFrame], None]


class _InlineDelivery:
    """Stands in for a receiver's decoder queue (aiortc only calls `put`): a frame goes to
    the sink at once; None (the receiver stopping) is dropped, as nobody awaits the track."""

    def __init__(self, sink: FrameSink) -> None:
        self._sink = sink

    def put(self, item: tuple[Any, Any] | None) -> None:
        if item is None:
            return
        codec, frame = item
        try:
            self._sink(
                EncodedFrame(codec.name.lower(), bytes(frame.data), frame.timestamp,
                             codec.clockRate)
            )  # fmt: skip
        except Exception:  # never into aiortc's receive loop: that would end the connection
            logger.exception("dropping a received %s frame", codec.name)


_aiortc_decoder_worker = aiortc.rtcrtpreceiver.decoder_worker


def _decoder_worker(loop: Any, input_q: Any, output_q: Any, decode_error: Any) -> None:
    if isinstance(input_q, _InlineDelivery):
        return  # frames of this receiver are delivered inline: the thread has nothing to do
    _aiortc_decoder_worker(loop, input_q, output_q, decode_error)


_aiortc_erase_old = aiortc.rate.RateCounter._erase_old


def _erase_old(self: aiortc.rate.RateCounter, now_ms: int) -> None:
    """aiortc's `RateCounter._erase_old`, without stepping through a gap longer than the
    window: it would empty every bucket on the way, so they are emptied at once."""
    window: int = self._window_size
    origin = self._origin_ms
    steps = 0 if origin is None else now_ms - window + 1 - origin
    if origin is None or steps <= window:
        _aiortc_erase_old(self, now_ms)
        return
    for bucket in self._buckets:
        bucket.count = 0
        bucket.value = 0
    self._total.count = 0
    self._total.value = 0
    self._origin_index = (self._origin_index + steps) % window
    self._origin_ms = origin + steps


def install_passthrough() -> None:
    """Make every aiortc receiver in this process yield EncodedFrames (idempotent)."""
    # The receiver module imports these by name; the patch goes where they are looked up.
    aiortc.rtcrtpreceiver.get_decoder = _PassthroughDecoder  # type: ignore[attr-defined,assignment]
    aiortc.rtcrtpreceiver.decoder_worker = _decoder_worker
    aiortc.rate.RateCounter._erase_old = _erase_old  # type: ignore[method-assign]


def deliver_inline(receiver: RTCRtpReceiver, sink: FrameSink) -> None:
    """Hand this receiver's frames to `sink` on the loop as they are reassembled, instead of
    through `track.recv()`. Call it before the receiver starts (the "track" event is)."""
    if receiver._RTCRtpReceiver__decoder_thread is not None:  # type: ignore[attr-defined]
        raise RuntimeError("deliver_inline after the receiver started")
    before: queue.Queue[Any] = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
    if not before.empty():
        raise RuntimeError("deliver_inline after frames were queued")
    receiver._RTCRtpReceiver__decoder_queue = _InlineDelivery(sink)  # type: ignore[attr-defined]


def restrict_host_addresses(addresses: Sequence[str]) -> None:
    """Offer only these addresses as ICE host candidates (empty: every interface)."""
    if not addresses:
        return
    chosen = list(addresses)

    def host_addresses(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses


def answer_dtls_passive(pc: RTCPeerConnection) -> None:
    """Make the coming answer take the DTLS server role (`a=setup:passive`) on every section
    the offer left to us (`actpass`); an offer that chose a role keeps it. Call it between
    `setRemoteDescription(offer)` and `createAnswer()`."""
    remote = pc.remoteDescription
    if remote is None or remote.type != "offer":
        raise RuntimeError("answer_dtls_passive needs the remote offer applied first")
    actpass = {
        m.rtp.muxId for m in SessionDescription.parse(remote.sdp).media
        if m.dtls is not None and m.dtls.role == "auto"
    }  # fmt: skip
    pairs = [(t.mid, t.receiver.transport) for t in pc.getTransceivers()]
    if pc.sctp is not None:
        pairs.append((pc.sctp.mid, pc.sctp.transport))
    for mid, transport in pairs:
        # "auto" after the offer: aiortc would answer "active" (an "active" offer has
        # already made it "server"; a "passive" one is not in `actpass`).
        if mid in actpass and transport._role == "auto":
            transport._set_role("server")


async def send_pli(receiver: RTCRtpReceiver) -> bool:
    """Ask the remote sender for a keyframe; False when no media source is known yet.

    The PLI names the media SSRC, never the retransmission (RTX) one, which a sender
    ignores: Chromium probes the bandwidth with padding on its RTX SSRC from the first
    packets of a call, so that SSRC is often the first one the receiver lists, for as long
    as probes keep coming (browsers then sent no keyframe asked for in their first ~10 s)."""
    rtx: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
    media = [s for s in receiver.getSynchronizationSources() if s.source not in rtx]
    if not media:
        return False
    newest = max(media, key=lambda s: s.timestamp)
    await receiver._send_rtcp_pli(newest.source)
    return True


def forward_keyframe_requests(sender: RTCRtpSender, request: Callable[[], None]) -> None:
    """Make a viewer's PLI/FIR on this sender ask the publisher for a keyframe."""
    sender._send_keyframe = request  # type: ignore[method-assign]  # see module docstring


def enlarge_receive_buffers(size_bytes: int) -> None:
    """Ask for `size_bytes` of kernel receive buffer on every ICE socket (the kernel caps it
    at net.core.rmem_max). aioice applies this module constant to each socket it opens."""
    aioice.turn.UDP_SOCKET_BUFFER_SIZE = size_bytes
