// The watch page: the stream's title and state from the API, its live HLS with hls.js in
// low-latency mode (or the browser's own HLS where hls.js cannot run, as on iOS Safari), and
// its past broadcasts, each playable as VOD. Subscriber-only streams play with the signed
// playback token the API gives to those allowed to watch.
import { api, el, recordingLabel, show as say } from "./api.js";
import { withNext } from "./header.js";
import { endedMessage, renderChatPanel, startChat } from "./chat.js";
import { LowLatency } from "./lowlatency.js";
import { startSubscribe } from "./subscribe.js";
import { startReport } from "./report.js";
import { startTips } from "./tip.js";
import { keepLive, liveOptions } from "./player.js";

// The chat socket says when the stream goes live or ends (stream_state events); the API is
// looked at again then, and only seldom otherwise. Without the socket, every few seconds.
const POLL_MS = 5000;
const POLL_WITH_CHAT_MS = 30_000;
const RECORDINGS_EVERY_MS = 30_000; // the list is looked at again when the state changes
const TICKET_MARGIN_MS = 60_000; // a token this close to expiring is renewed first
const $ = (id) => document.getElementById(id);
const video = $("video");
const title = $("title");
const badge = $("state");
const owner = $("owner");
const message = $("message");
const error = $("error");
const backToLive = $("back-to-live");
const pastBroadcasts = $("recordings");
const recordingList = $("recording-list");
const viewers = $("viewers");
const chatPanel = $("chat");
renderChatPanel(chatPanel, "h2");
const slug = decodeURIComponent(location.pathname.split("/").pop());
const streamPath = `/api/v1/streams/${encodeURIComponent(slug)}`;

let hls = null; // the hls.js player while playing with it
let stopKeepLive = null; // ends the live player's latency keeping
let playing = null; // what plays: "live", a recording id, or null
let unplayable = false; // no way to play HLS here: stop trying
let refused = ""; // why this viewer may not play the stream, once the API said so
let ticket = null; // {url, token, expires_at} from the playback API
let state = null; // the stream's state at the last look
let visibility = "public";
// Why the broadcast ended, when someone ended it (a stream_state event with a reason).
let endedWhy = "";
let recordings = []; // the stream's recordings, newest first
let recordingsLoaded = { at: 0, state: null };
// A recording asked for in the address (?recording=ID): played instead of the live stream.
let chosen = new URLSearchParams(location.search).get("recording");
// The "Low latency" switch: flipping it (or WHEP failing) starts the live player again.
const lowLatency = new LowLatency(video, document.querySelector(".player"), ({ recheck }) => {
  if (playing !== "live") return;
  stop();
  if (recheck) pollSoon();
  else syncPlayer().catch((err) => say(error, `Could not load the stream: ${err.message}`));
});

/** The playback ticket, renewed before it expires; null when this viewer may not watch. */
async function playbackTicket() {
  const fresh = ticket && (!ticket.expires_at || ticket.expires_at * 1000 - Date.now() > TICKET_MARGIN_MS);
  if (fresh || refused) return refused ? null : ticket;
  try {
    ticket = await api("POST", `${streamPath}/playback`);
    return ticket;
  } catch (err) {
    if (err.status === 401) refused = "This stream is for subscribers: log in to watch.";
    else if (err.status === 403) refused = "This stream is for its subscribers.";
    else throw err;
    return null;
  }
}

function withToken(url, token) {
  return token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : url;
}

/** Play `source`: the live stream (low latency) or a recording (VOD). */
function start(what, source) {
  stop();
  playing = what;
  say(message, "");
  const Hls = window.Hls;
  if (Hls && Hls.isSupported()) {
    const options = what === "live" ? { ...liveOptions } : {};
    hls = new Hls(options);
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else {
        stop();
        ticket = null; // an expired token is one way to get here
        say(message, what === "live" ? "Playback interrupted: retrying…" : "This recording could not be played.");
        pollSoon(); // ended, or the network failed: look at the stream's state again
      }
    });
    hls.loadSource(source);
    hls.attachMedia(video);
    if (what === "live") stopKeepLive = keepLive(hls, video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = source;
  } else {
    playing = null;
    unplayable = true;
    say(error, Hls ? "This browser cannot play HLS." : "The player (hls.js) is not installed on this server.");
    return;
  }
  video.play().catch(() => {}); // muted autoplay; the controls are there if a browser refuses
}

/** Play the live stream over WHEP when the switch is on, falling back to HLS. */
function startLive(granted) {
  if (!lowLatency.wanted) {
    start("live", granted.url);
    return;
  }
  stop();
  playing = "live";
  say(message, "");
  lowLatency.play(slug, granted.token).then((ok) => {
    if (!ok && playing === "live" && !hls) start("live", granted.url);
  });
}

function stop() {
  lowLatency.stop();
  if (stopKeepLive) {
    stopKeepLive();
    stopKeepLive = null;
  }
  if (hls) {
    hls.destroy();
    hls = null;
  }
  if (playing !== null) {
    video.removeAttribute("src");
    video.load();
  }
  playing = null;
}

function showRecordings() {
  recordingList.replaceChildren(
    ...recordings.map((r) => {
      const button = el(
        "button",
        { type: "button", class: "quiet", onclick: () => chooseRecording(r.id) },
        recordingLabel(r),
      );
      if (playing === r.id) button.setAttribute("aria-current", "true");
      return el("li", {}, button);
    }),
  );
  pastBroadcasts.hidden = recordings.length === 0;
}

async function loadRecordings() {
  const due = recordingsLoaded.state !== state || Date.now() - recordingsLoaded.at > RECORDINGS_EVERY_MS;
  if (!due) return;
  ({ recordings } = await api("GET", `${streamPath}/recordings`));
  recordingsLoaded = { at: Date.now(), state };
  showRecordings();
}

function setAddress(recordingId) {
  const url = new URL(location.href);
  if (recordingId === null) url.searchParams.delete("recording");
  else url.searchParams.set("recording", recordingId);
  history.replaceState(null, "", url);
}

async function chooseRecording(id) {
  chosen = String(id);
  setAddress(chosen);
  await syncPlayer();
}

backToLive.addEventListener("click", async () => {
  chosen = null;
  setAddress(null);
  await syncPlayer();
});

/** Start or stop the player to match what is chosen and the stream's state. */
async function syncPlayer() {
  backToLive.hidden = chosen === null || state !== "live";
  lowLatency.offer(chosen === null && state === "live" && !refused);
  if (chosen !== null) {
    const recording = recordings.find((r) => String(r.id) === chosen);
    if (!recording) {
      stop();
      say(message, "That recording is no longer kept.");
    } else if (String(playing) !== chosen && !unplayable) {
      const granted = await playbackTicket();
      if (granted) start(recording.id, withToken(recording.url, granted.token));
      else say(message, refused);
    }
  } else if (state === "live") {
    if (playing !== "live" && !unplayable) {
      const granted = await playbackTicket();
      if (granted) startLive(granted);
      else say(message, refused);
    }
  } else {
    stop();
    say(message, endedWhy || "This stream is offline.");
  }
  showRecordings();
}

/** Show the stream's state; start or stop the player to match. False: stop polling. */
async function refresh() {
  let stream;
  try {
    ({ stream } = await api("GET", streamPath));
  } catch (err) {
    if (err.status === 404) {
      title.textContent = slug;
      say(message, "There is no such stream.");
      return false;
    }
    say(error, `Could not load the stream: ${err.message}`);
    return true;
  }
  const name = stream.title || stream.slug;
  document.title = `${name} — livecore`;
  title.textContent = name;
  owner.textContent = stream.owner.display_name ? `by ${stream.owner.display_name}` : "";
  badge.textContent = stream.state;
  badge.classList.toggle("live", stream.state === "live");
  state = stream.state;
  visibility = stream.visibility;
  startMoneyOnce(stream);
  try {
    if (state !== "live" || chosen !== null) await loadRecordings();
    await syncPlayer();
    say(error, unplayable ? error.textContent : "");
  } catch (err) {
    say(error, `Could not load the stream: ${err.message}`);
  }
  return true;
}

let moneyStarted = false;

/** Tip, Subscribe and Report stream, once the stream is known. */
function startMoneyOnce(stream) {
  if (moneyStarted) return;
  moneyStarted = true;
  const slot = $("money-actions");
  const status = $("money-status");
  const failed = (err) => say(error, `Could not load tips and subscriptions: ${err.message}`);
  const money = [
    startSubscribe(slot, slug, stream, status, { subscribed: admitted }).catch(failed),
    startTips(slot, slug, stream, status).catch(failed),
  ];
  // After the money buttons, so the row reads the same on every load.
  Promise.allSettled(money)
    .then(() => startReport(slot, slug, stream, status))
    .catch((err) => say(error, `Could not offer reporting: ${err.message}`));
}

/** A subscription lets this viewer in now: ask for playback again and open the chat. */
function admitted() {
  refused = "";
  ticket = null;
  if (chatBlocked) {
    chatBlocked = false;
    chatPanel.classList.remove("chat-closed");
    chatPanel.querySelector(".chat-prompt").hidden = true;
  }
  pollSoon();
}

let timer = null;
let chatting = false; // the chat socket is open: it tells of state changes
let chatBlocked = false; // a subscriber-only chat this viewer may not read

function showViewers(count) {
  viewers.textContent = `${count} watching`;
  viewers.hidden = false;
}

/** The chat of a subscriber-only stream is theirs alone: say so instead of knocking. */
function chatRefused() {
  const prompt = chatPanel.querySelector(".chat-prompt");
  const loggedOut = refused.includes("log in");
  prompt.replaceChildren(
    ...(loggedOut
      ? [
          "This chat is for subscribers: ",
          el("a", { href: withNext("/login") }, "Log in"),
          " or ",
          el("a", { href: withNext("/signup") }, "sign up"),
          ".",
        ]
      : ["This chat is for the stream's subscribers."]),
  );
  prompt.hidden = false;
  chatPanel.classList.add("chat-closed");
  chatPanel.hidden = false;
}

async function startChatOnce() {
  if (chatting) return;
  chatting = true;
  // The socket would be refused (403) before it opens, which a browser cannot tell from a
  // network failure: ask the playback API, which answers the same question, first.
  if (visibility === "subscribers" && !(await playbackTicket())) {
    chatting = false;
    chatBlocked = true;
    chatRefused();
    return;
  }
  chatPanel.hidden = false;
  startChat(chatPanel, slug, {
    state(next, event) {
      badge.textContent = next;
      badge.classList.toggle("live", next === "live");
      if (next === "live") endedWhy = "";
      if (event && event.reason) {
        endedWhy = endedMessage(event);
        // At once: the stream turns offline an instant later, when the publisher's node
        // has closed its session (its own stream_state then looks at the API again).
        state = "offline";
        syncPlayer().catch((err) => say(error, `Could not load the stream: ${err.message}`));
        return;
      }
      pollSoon();
    },
    viewers: showViewers,
    connected: pollSoon,
  });
}

async function poll() {
  timer = null;
  const found = await refresh();
  if (found && !chatting && !chatBlocked && state !== null) {
    try {
      await startChatOnce();
    } catch (err) {
      chatting = false;
      say(error, `Could not open the chat: ${err.message}`);
    }
  }
  if (found) timer = setTimeout(poll, chatting ? POLL_WITH_CHAT_MS : POLL_MS);
}

function pollSoon() {
  if (timer === null) return; // a look is under way, or polling has stopped
  clearTimeout(timer);
  timer = setTimeout(poll, 500);
}

// The broadcast's last segment played out (the playlist was ended): is it over?
video.addEventListener("ended", () => {
  if (playing === "live") pollSoon();
});
poll();
