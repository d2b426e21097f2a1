"""A GStreamer WHIP publisher, built the way Debian's `whip-client` (simple-whip-client) and
gst-plugins-rs' whipsink are: webrtcbin (libnice ICE, DTLS with its own RSA certificate, an
`actpass` offer) sending x264 H.264 and Opus, with the WHIP exchange (RFC 9725) done here.

Debian 12's `whip-client` binary cannot be used itself: it links libsoup 2, while webrtcbin's
libnice pulls in libsoup 3 (through gupnp-igd), and libsoup aborts a process that loads both
("libsoup2 symbols detected") before any network I/O. Everything that talks to livecore
(webrtcbin and its ICE, DTLS and SRTP) is the same here.

Run by Debian's python3 (python3-gi and the GStreamer typelibs are Debian packages, not in
livecore's virtualenv): `python3 webrtcbin_whip.py URL TOKEN`. It publishes until SIGINT or
SIGTERM, then DELETEs its WHIP session. Progress goes to stdout, one line per event.
`python3 webrtcbin_whip.py --check` exits 1, naming what is missing, when it cannot run here.
"""

from __future__ import annotations

import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

# whip-client's usual test sources: x264 (constrained baseline, a keyframe every second,
# SPS/PPS in band) and Opus, payloaded for webrtcbin.
VIDEO = (
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1"
    " ! videoconvert ! queue ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30"
    " bitrate=400 ! video/x-h264,profile=constrained-baseline"
    " ! rtph264pay config-interval=-1 pt=96 ssrc=2 ! queue"
    " ! application/x-rtp,media=video,encoding-name=H264,payload=96"
)
AUDIO = (
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! queue ! opusenc"
    " ! rtpopuspay pt=100 ssrc=1 ! queue"
    " ! application/x-rtp,media=audio,encoding-name=OPUS,payload=100"
)
HTTP_TIMEOUT_S = 10


def say(text: str) -> None:
    print(f"[webrtcbin-whip] {text}", flush=True)


class WhipPublisher:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.location: str | None = None
        self.status = 0
        self.loop = GLib.MainLoop()
        self.pipeline: Any = Gst.parse_launch(
            f"webrtcbin name=sendonly bundle-policy=max-bundle {VIDEO} ! sendonly. "
            f"{AUDIO} ! sendonly."
        )
        self.webrtc: Any = self.pipeline.get_by_name("sendonly")
        self.webrtc.connect("on-negotiation-needed", self._on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self._on_gathering_state)
        for prop in ("ice-connection-state", "connection-state"):
            self.webrtc.connect(f"notify::{prop}", self._on_state)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self._on_error)

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, self._stop)
        self.pipeline.set_state(Gst.State.PLAYING)
        self.loop.run()
        return self.status

    def _on_negotiation_needed(self, webrtc: Any) -> None:
        # A WHIP publisher only sends (whip-client does the same).
        for pad in webrtc.sinkpads:
            pad.get_property("transceiver").set_property(
                "direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY
            )
        webrtc.emit("create-offer", None, Gst.Promise.new_with_change_func(self._on_offer))

    def _on_offer(self, promise: Any) -> None:
        reply = promise.get_reply()  # owns the offer: keep it referenced while it is used
        offer = reply.get_value("offer")
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def _on_gathering_state(self, webrtc: Any, _spec: Any) -> None:
        # Candidates go in the offer (whip-client --no-trickle): one POST, no PATCH.
        if webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self._post_offer)

    def _post_offer(self) -> bool:
        sdp = self.webrtc.get_property("local-description").sdp.as_text()
        say("offer: " + " ".join(line for line in sdp.splitlines() if line.startswith("a=setup")))
        request = urllib.request.Request(
            self.url, data=sdp.encode(), method="POST",
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {self.token}"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:
                answer = resp.read().decode()
                self.location = urllib.parse.urljoin(self.url, resp.headers["Location"])
        except (OSError, urllib.error.HTTPError) as exc:
            say(f"WHIP POST failed: {exc}")
            self._stop(status=1)
            return False  # GLib.SOURCE_REMOVE: run once
        say("answer: " + " ".join(x for x in answer.splitlines() if x.startswith("a=setup")))
        _, message = GstSdp.SDPMessage.new_from_text(answer)
        kind = GstWebRTC.WebRTCSDPType.ANSWER
        description = GstWebRTC.WebRTCSessionDescription.new(kind, message)
        self.webrtc.emit("set-remote-description", description, Gst.Promise.new())
        return False  # GLib.SOURCE_REMOVE: run once

    def _on_state(self, webrtc: Any, spec: Any) -> None:
        value = webrtc.get_property(spec.name)
        say(f"{spec.name}: {value.value_nick}")
        if spec.name == "connection-state" and value == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            GLib.idle_add(self._stop, 1)

    def _on_error(self, _bus: Any, message: Any) -> None:
        error, debug = message.parse_error()
        say(f"pipeline error: {error.message} ({debug})")
        GLib.idle_add(self._stop, 1)

    def _stop(self, status: int = 0) -> bool:
        if self.location is not None:
            request = urllib.request.Request(self.location, method="DELETE")
            request.add_header("Authorization", f"Bearer {self.token}")
            try:
                with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:
                    say(f"DELETE {resp.status}")
            except OSError as exc:
                say(f"DELETE failed: {exc}")
            self.location = None
        self.status = self.status or status
        self.pipeline.set_state(Gst.State.NULL)
        self.loop.quit()
        return False  # GLib.SOURCE_REMOVE: run once


ELEMENTS = (
    "webrtcbin", "nicesrc", "dtlssrtpenc", "srtpenc", "rtpbin", "videotestsrc", "x264enc",
    "rtph264pay", "audiotestsrc", "opusenc", "rtpopuspay",
)  # fmt: skip


def main() -> None:
    Gst.init(None)
    if sys.argv[1:] == ["--check"]:
        missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
        if missing:
            print(f"GStreamer elements missing: {', '.join(missing)}")
        sys.exit(1 if missing else 0)
    url, token = sys.argv[1], sys.argv[2]
    sys.exit(WhipPublisher(url, token).run())


if __name__ == "__main__":
    main()
