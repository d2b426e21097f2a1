// The watch page's "Low latency" switch: while on, the live stream plays over WebRTC (WHEP:
// frames forwarded as they arrive, no segments to wait for) instead of LL-HLS. When the
// server refuses (full, not live on this node, no valid playback token) or the connection
// fails or brings no video, the page plays HLS again and says why in words. The switch is
// only offered while the live stream plays; the viewer's choice is remembered in this
// browser.
import { api, el } from "./api.js";
import { play } from "./whep.js";

const REMEMBERED = "livecore.lowLatency";
// Connected but no picture this long (a firewall that lets signalling through but not
// media, or a browser that cannot decode the stream): give up and play HLS.
const FIRST_FRAME_MS = 10_000;
const DISCONNECTED_MS = 3000;
const STANDARD = "Playing with standard latency (HLS) instead.";

function remembered() {
  try {
    return localStorage.getItem(REMEMBERED) === "1";
  } catch {
    return false; // storage blocked: off until switched on
  }
}

function remember(on) {
  try {
    localStorage.setItem(REMEMBERED, on ? "1" : "0");
  } catch {
    // storage blocked: the choice lasts for this page only
  }
}

/** Why the server refused the session, in words. */
function refusal(err) {
  switch (err.status) {
    case 503:
      return "this server already has as many low-latency viewers as it can take";
    case 404:
      return "the stream is not live on this server";
    case 401:
    case 403:
      return "the server did not accept this page's playback pass";
    case 415:
    case 422:
      return "this browser cannot receive the stream's video over WebRTC";
    default:
      return err.status ? err.message : "the connection could not be set up";
  }
}

export class LowLatency {
  /**
   * Put the switch after `anchor`. `restart` is called when the viewer flips it or low
   * latency playback fails: the page then starts its player again, in the mode `wanted`
   * says (with `{recheck: true}`, after looking at the stream's state again).
   */
  constructor(video, anchor, restart) {
    this.video = video;
    this.restart = restart;
    this.supported = typeof RTCPeerConnection === "function";
    this.session = null;
    this.attempt = 0; // each play() or stop() starts a new one; late answers are dropped
    this.timer = null;
    this.input = el("input", { type: "checkbox", role: "switch", id: "low-latency" });
    this.input.checked = this.supported && remembered();
    this.note = el("span", { class: "hint", role: "status" });
    this.box = el(
      "div",
      { class: "player-options", hidden: true },
      el("label", { class: "switch" }, this.input, "Low latency"),
      this.note,
    );
    anchor.after(this.box);
    this.input.addEventListener("change", () => {
      remember(this.input.checked);
      this.say("");
      this.restart({ recheck: false });
    });
    addEventListener("pagehide", () => this.session?.abandon());
  }

  /** Whether the next live playback should try WHEP. */
  get wanted() {
    return this.supported && this.input.checked;
  }

  /** Offer the switch (while the live stream is what plays) or take it away. */
  offer(live) {
    this.box.hidden = !(live && this.supported);
  }

  say(text) {
    this.note.textContent = text;
  }

  /** Play `slug` over WHEP into the video; false (and the reason shown) when it cannot. */
  async play(slug, token) {
    const attempt = ++this.attempt;
    this.say("Connecting with low latency…");
    let session;
    try {
      session = await play(`/whep/${encodeURIComponent(slug)}`, token);
    } catch (err) {
      if (!err.status) console.warn("WHEP:", err); // the server's refusals are said in words
      if (attempt === this.attempt) this.fallBack(`Low latency is not available: ${refusal(err)}.`);
      return false;
    }
    if (attempt !== this.attempt) {
      session.abandon(); // stopped or restarted while the offer was on its way
      return false;
    }
    this.session = session;
    let dropped = null;
    session.pc.addEventListener("connectionstatechange", () => {
      const connection = session.pc.connectionState;
      clearTimeout(dropped);
      if (this.session !== session) return;
      if (connection === "failed") this.lost("The low-latency connection was lost.", slug);
      // Chromium says "failed" only some 10 s after "disconnected", with the picture frozen
      // all along; a moment's network blip comes back within this.
      if (connection === "disconnected") {
        dropped = setTimeout(() => {
          if (this.session === session) this.lost("The low-latency connection was lost.", slug);
        }, DISCONNECTED_MS);
      }
    });
    this.timer = setTimeout(() => {
      if (this.session === session) this.lost("No video arrived over the low-latency connection.", slug);
    }, FIRST_FRAME_MS);
    this.video.addEventListener(
      "playing",
      () => {
        if (this.session !== session) return;
        clearTimeout(this.timer);
        this.say("Playing with low latency (WebRTC).");
      },
      { once: true },
    );
    this.video.srcObject = session.stream;
    this.video.play().catch(() => {}); // muted autoplay; the controls are there otherwise
    return true;
  }

  /** The switch turns off for this page (the remembered choice stays) and says why. */
  fallBack(text) {
    this.input.checked = false;
    this.say(`${text} ${STANDARD}`);
  }

  /** The session failed while playing: over HLS if the stream is still live. */
  async lost(text, slug) {
    this.stop();
    let live = true;
    try {
      const { stream } = await api("GET", `/api/v1/streams/${encodeURIComponent(slug)}`);
      live = stream.state === "live";
    } catch {
      // unknown: take it as still live, and let the page find out
    }
    // A broadcast that ended takes its sessions with it: that is no reason to give up
    // low latency for the next one.
    if (live) this.fallBack(text);
    else this.say("");
    this.restart({ recheck: true });
  }

  /** End WHEP playback, if any: the video lets go of it at once, the DELETE follows. */
  stop() {
    this.attempt += 1;
    clearTimeout(this.timer);
    const session = this.session;
    this.session = null;
    if (!session) return;
    this.video.srcObject = null;
    session.stop().catch(() => {}); // the server also ends sessions whose peer is gone
  }
}
