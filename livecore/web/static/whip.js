// WHIP (RFC 9725) publishing from the browser: one POST with the complete offer (no trickle),
// then DELETE on the session's Location to end it.
import { errorFrom } from "./api.js";
import { abandonSession, offer } from "./offer.js";

/** List H.264 first (packetization-mode=1 before 0) when this browser can send it. */
function preferH264(transceiver) {
  if (typeof RTCRtpSender.getCapabilities !== "function") return false;
  if (typeof transceiver.setCodecPreferences !== "function") return false;
  const codecs = RTCRtpSender.getCapabilities("video")?.codecs ?? [];
  const isH264 = (c) => c.mimeType.toLowerCase() === "video/h264";
  const mode1 = (c) => /packetization-mode=1/.test(c.sdpFmtpLine || "");
  const h264 = codecs.filter(isH264).sort((a, b) => mode1(b) - mode1(a));
  if (!h264.length) return false;
  // The rest stay listed after H.264 (retransmission, and fallbacks for other servers).
  transceiver.setCodecPreferences([...h264, ...codecs.filter((c) => !isH264(c))]);
  return true;
}

export class WhipSession {
  constructor(pc, location, h264) {
    this.pc = pc;
    this.location = location;
    this.h264 = h264;
  }

  /** End the broadcast: close the connection and DELETE the session. */
  async stop() {
    this.pc.close();
    const response = await fetch(this.location, { method: "DELETE" });
    // 404: the server ended it already (another publisher took over, or it timed out).
    if (!response.ok && response.status !== 404) throw await errorFrom(response);
  }

  /** Best effort while the page goes away: the request outlives the page. */
  abandon() {
    abandonSession(this.pc, this.location);
  }
}

/**
 * Publish `stream`'s tracks to the WHIP endpoint `url` with the stream key as bearer token.
 * Throws an Error with the server's message when the offer is refused.
 */
export async function publish(url, key, stream, { onConnectionState } = {}) {
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  try {
    let h264 = false;
    for (const track of stream.getTracks()) {
      const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      if (track.kind === "video") h264 = preferH264(transceiver);
    }
    if (onConnectionState) {
      pc.addEventListener("connectionstatechange", () => onConnectionState(pc.connectionState));
    }
    return new WhipSession(pc, await offer(pc, url, key, "WHIP"), h264);
  } catch (err) {
    pc.close();
    throw err;
  }
}
