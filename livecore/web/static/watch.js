// The watch page: the stream's title and state from the API, and its HLS with hls.js in
// low-latency mode (or the browser's own HLS where hls.js cannot run, as on iOS Safari).
import { api } from "./api.js";

const POLL_MS = 5000;
const $ = (id) => document.getElementById(id);
const video = $("video");
const title = $("title");
const badge = $("state");
const owner = $("owner");
const message = $("message");
const error = $("error");
const slug = decodeURIComponent(location.pathname.split("/").pop());
const source = `/hls/${encodeURIComponent(slug)}/master.m3u8`;

let hls = null; // the hls.js player while playing with it
let playing = false;
let unplayable = false; // no way to play HLS here: stop trying

function say(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

function start() {
  playing = true;
  say(message, "");
  const Hls = window.Hls;
  if (Hls && Hls.isSupported()) {
    // Catch up (up to 1.5x speed) when behind the target latency, e.g. after a stall.
    hls = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else {
        stop();
        say(message, "Playback interrupted: retrying…");
        pollSoon(); // ended, or the network failed: look at the stream's state again
      }
    });
    hls.loadSource(source);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = source;
  } else {
    playing = false;
    unplayable = true;
    say(error, Hls ? "This browser cannot play HLS." : "The player (hls.js) is not installed on this server.");
    return;
  }
  video.play().catch(() => {}); // muted autoplay; the controls are there if a browser refuses
}

function stop() {
  if (hls) {
    hls.destroy();
    hls = null;
  }
  if (playing) {
    video.removeAttribute("src");
    video.load();
  }
  playing = false;
}

/** Show the stream's state; start or stop the player to match. False: stop polling. */
async function refresh() {
  let stream;
  try {
    ({ stream } = await api("GET", `/api/v1/streams/${encodeURIComponent(slug)}`));
  } catch (err) {
    if (err.status === 404) {
      title.textContent = slug;
      say(message, "There is no such stream.");
      return false;
    }
    say(error, `Could not load the stream: ${err.message}`);
    return true;
  }
  say(error, unplayable ? error.textContent : "");
  const name = stream.title || stream.slug;
  document.title = `${name} — livecore`;
  title.textContent = name;
  owner.textContent = stream.owner.display_name ? `by ${stream.owner.display_name}` : "";
  badge.textContent = stream.state;
  badge.classList.toggle("live", stream.state === "live");
  if (stream.state === "live") {
    if (!playing && !unplayable) start();
  } else {
    stop();
    say(message, "This stream is offline.");
  }
  return true;
}

let timer = null;

async function poll() {
  timer = null;
  if (await refresh()) timer = setTimeout(poll, POLL_MS);
}

function pollSoon() {
  if (timer === null) return; // a look is under way, or polling has stopped
  clearTimeout(timer);
  timer = setTimeout(poll, 500);
}

// The broadcast's last segment played out (the playlist was ended): is it over?
video.addEventListener("ended", pollSoon);
poll();
