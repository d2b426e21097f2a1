// WHEP playback from the browser: one POST with a complete recvonly offer (video and audio,
// no trickle), the answer back with the session's Location, and DELETE on that Location to
// end it. livecore forwards the publisher's H.264 and Opus as they are.
import { errorFrom } from "./api.js";
import { abandonSession, offer } from "./offer.js";

export class WhepSession {
  constructor(pc, location, stream) {
    this.pc = pc;
    this.location = location;
    this.stream = stream; // the MediaStream the received tracks join, for a <video>
  }

  /** End playback: DELETE the session, then close the connection. */
  async stop() {
    // In this order: closed first, the server would notice and end the session itself,
    // and the DELETE would find nothing to end.
    let response;
    try {
      response = await fetch(this.location, { method: "DELETE" });
    } finally {
      this.pc.close();
    }
    // 404: the server ended it already (the broadcast ended, or the connection failed).
    if (!response.ok && response.status !== 404) throw await errorFrom(response);
  }

  /** Best effort while the page goes away: the request outlives the page. */
  abandon() {
    abandonSession(this.pc, this.location);
  }
}

/**
 * Ask the WHEP endpoint `url` for the stream, with `token` as bearer token when the stream
 * needs one. Throws an ApiError (with `status`) when the server refuses the offer.
 */
export async function play(url, token) {
  url = new URL(url, location.href).href; // the session's Location is relative to it
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  try {
    const stream = new MediaStream();
    pc.addEventListener("track", (event) => stream.addTrack(event.track));
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    return new WhepSession(pc, await offer(pc, url, token, "WHEP"), stream);
  } catch (err) {
    pc.close();
    throw err;
  }
}
