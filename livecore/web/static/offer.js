// The exchange WHIP (RFC 9725) and WHEP share: ICE gathered first (no trickle), one POST with
// the complete SDP offer, a 201 with the answer and the session's Location, and DELETE on that
// Location to end the session.
import { errorFrom } from "./api.js";

const GATHER_TIMEOUT_MS = 5000;

/** Resolve once ICE gathering is complete, or after a timeout with what was gathered. */
export function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** Best effort while the page goes away: close `pc` and DELETE the session; the request
 * outlives the page. */
export function abandonSession(pc, location) {
  pc.close();
  fetch(location, { method: "DELETE", keepalive: true }).catch(() => {});
}

/**
 * Offer `pc`'s transceivers to the endpoint `url` (absolute), with `token` as bearer token
 * when there is one, and apply the answer. Resolves with the session's absolute Location.
 * Throws an ApiError (with `status`) when the server refuses the offer; `protocol` ("WHIP",
 * "WHEP") names the server when its answer has no Location. Leaves `pc` open when it throws:
 * the caller closes it.
 */
export async function offer(pc, url, token, protocol) {
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  if (response.status !== 201) throw await errorFrom(response);
  const location = response.headers.get("Location");
  if (!location) throw new Error(`the ${protocol} server sent no session Location`);
  const session = new URL(location, url).href;
  try {
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  } catch (err) {
    abandonSession(pc, session); // the server has a session already: end it
    throw err;
  }
  return session;
}
