// WHEP playback from the browser: one POST with a complete recvonly offer (video and audio,
// no trickle), the answer back with the session's Location, and DELETE on that Location to
// end it. livecore forwards the publisher's H.264 and Opus as they are.
import { errorFrom } from "./api.js";
import { gatheringComplete } from "./whip.js";

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
    this.pc.close();
    fetch(this.location, { method: "DELETE", keepalive: true }).catch(() => {});
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
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    const headers = { "Content-Type": "application/sdp" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
    if (response.status !== 201) throw await errorFrom(response);
    const location = response.headers.get("Location");
    if (!location) throw new Error("the WHEP server sent no session Location");
    const session = new WhepSession(pc, new URL(location, url).href, stream);
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    } catch (err) {
      session.abandon(); // the server has a session already: end it
      throw err;
    }
    return session;
  } catch (err) {
    pc.close();
    throw err;
  }
}
