// The studio: a creator's streams (create, edit, delete), going live from this browser,
// OBS's WHIP settings, and while live a dashboard: how long, how many watch, the ingest's
// health, the chat with moderator tools and recent tips; then the past broadcasts and their
// audience. Logging in is the shared header's (/login?next=/studio).
//
// Stream keys are stored hashed: the page shows one only right after it is made. Going live
// from here never needs it: each Go live asks for a short-lived publish token instead, so a
// reload does not force a new key on OBS.
import { api, el, show } from "./api.js";
import { endedMessage, renderChatPanel, startChat } from "./chat.js";
import { me, withNext } from "./header.js";
import { publish } from "./whip.js";

const LIST_REFRESH_MS = 5000; // other streams' live badges (the selected one follows its socket)
const HEALTH_REFRESH_MS = 2000;
const RECENT_TIPS = 8;
const $ = (id) => document.getElementById(id);
const ui = {
  error: $("error"),
  status: $("status"),
  signedOut: $("signed-out"),
  notCreator: $("not-creator"),
  studio: $("studio"),
  streams: $("my-streams"),
  noStreams: $("no-streams"),
  empty: $("empty"),
  createForm: $("create-form"),
  selected: $("selected"),
  title: $("selected-title"),
  state: $("selected-state"),
  watchLink: $("watch-link"),
  moderationLink: $("moderation-link"),
  dashboard: $("dashboard"),
  liveFor: $("live-for"),
  viewers: $("viewer-count"),
  healthNote: $("health-note"),
  health: {
    bitrate: $("h-bitrate"),
    fps: $("h-fps"),
    keyframes: $("h-keyframes"),
    loss: $("h-loss"),
    resolution: $("h-resolution"),
    codec: $("h-codec"),
  },
  preview: $("preview"),
  previewOff: $("preview-off"),
  camera: $("camera"),
  goLive: $("go-live"),
  stop: $("stop"),
  serverUrl: $("server-url"),
  streamKey: $("stream-key"),
  newKey: $("new-key"),
  copyKey: $("copy-key"),
  editForm: $("edit-form"),
  deleteStream: $("delete-stream"),
  pastTable: $("past-table"),
  past: $("past-broadcasts"),
  noBroadcasts: $("no-broadcasts"),
  chat: $("chat"),
  tips: $("recent-tips"),
  noTips: $("no-tips"),
};

renderChatPanel(ui.chat, "h3");
const CHAT_PANEL = ui.chat.cloneNode(true); // as drawn, before any chat starts

const state = {
  streams: [],
  selected: null, // slug
  broadcasts: [], // the selected stream's past broadcasts, newest first
  keys: new Map(), // slug -> a stream key made while this page is open (never stored)
  camera: null, // MediaStream
  session: null, // WhipSession while this browser publishes
  ownBroadcast: false, // the selected stream's broadcast is this page's (until it ends)
  busy: false,
  chat: null, // the selected stream's chat panel
  viewers: null,
  health: null, // the last health answer
  tips: [],
};

function status(text) {
  ui.status.textContent = text;
}

function fail(err) {
  show(ui.error, err instanceof Error ? err.message : String(err));
}

/** Run an action from a button: one at a time, errors shown on the page. */
function action(fn) {
  return async (event) => {
    event?.preventDefault();
    if (state.busy) return;
    state.busy = true;
    show(ui.error, "");
    try {
      await fn(event);
    } catch (err) {
      fail(err);
    } finally {
      state.busy = false;
      render();
    }
  };
}

const path = (slug) => `/api/v1/streams/${encodeURIComponent(slug)}`;
const whipUrl = (slug) => `${location.origin}/whip/${encodeURIComponent(slug)}`;
const current = () => state.streams.find((s) => s.slug === state.selected) ?? null;

// -- formatting -------------------------------------------------------------------------

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function length(startedAt, endedAt) {
  const s = Math.max(0, Math.round((Date.parse(endedAt) - Date.parse(startedAt)) / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function rate(bps) {
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(2)} Mb/s` : `${Math.round(bps / 1000)} kb/s`;
}

const CODECS = { h264: "H.264", vp8: "VP8", opus: "Opus" };

function money(amountMinor, currency) {
  try {
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() });
    return format.format(amountMinor / 10 ** format.resolvedOptions().maximumFractionDigits);
  } catch {
    return `${(amountMinor / 100).toFixed(2)} ${currency.toUpperCase()}`;
  }
}

// -- rendering --------------------------------------------------------------------------

function render() {
  const publishing = state.session !== null;
  ui.streams.replaceChildren(
    ...state.streams.map((s) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            "aria-pressed": String(s.slug === state.selected),
            disabled: publishing,
            onclick: () => select(s.slug),
          },
          el("span", { class: "pick-title" }, s.title || s.slug),
          " ",
          el("span", { class: `badge${s.state === "live" ? " live" : ""}` }, s.state),
        ),
      ),
    ),
  );
  ui.noStreams.hidden = state.streams.length > 0;
  ui.empty.hidden = state.streams.length > 0;
  const stream = current();
  ui.selected.hidden = !stream;
  if (!stream) return;
  const live = stream.state === "live";
  ui.title.textContent = stream.title || stream.slug;
  ui.state.textContent = stream.state;
  ui.state.className = `badge${live ? " live" : ""}`;
  ui.watchLink.href = `/watch/${encodeURIComponent(stream.slug)}`;
  ui.moderationLink.href = `/studio/moderation?stream=${encodeURIComponent(stream.slug)}`;
  ui.serverUrl.textContent = whipUrl(stream.slug);
  const key = state.keys.get(stream.slug);
  ui.streamKey.textContent = key ?? "hidden: it is shown only right after it is made";
  ui.streamKey.classList.toggle("secret", Boolean(key));
  ui.copyKey.hidden = !key || !navigator.clipboard;
  ui.camera.textContent = state.camera ? "Camera off" : "Camera on";
  ui.previewOff.hidden = Boolean(state.camera);
  ui.camera.disabled = publishing;
  ui.goLive.disabled = publishing || state.busy;
  ui.stop.disabled = !publishing;
  ui.newKey.disabled = publishing;
  ui.deleteStream.disabled = live;
  ui.deleteStream.title = live ? "A live stream cannot be deleted: stop it first" : "";
  ui.dashboard.hidden = !live;
  renderDashboard(stream);
  renderPast(stream);
  renderTips();
}

function renderDashboard(stream) {
  if (stream.state !== "live") return;
  const since = stream.started_at ? (Date.now() - Date.parse(stream.started_at)) / 1000 : null;
  ui.liveFor.textContent = since === null ? "–" : clock(since);
  ui.viewers.textContent = state.viewers === null ? "–" : String(state.viewers);
  const ingest = state.health?.ingest;
  const h = ui.health;
  if (!ingest) {
    for (const node of Object.values(h)) node.textContent = "–";
    show(
      ui.healthNote,
      state.health ? "Ingest figures come from the server node that receives the stream; this one does not." : "",
    );
    return;
  }
  show(ui.healthNote, ingest.last_media_s > 3 ? `No media for ${Math.round(ingest.last_media_s)} s.` : "");
  h.bitrate.textContent = rate(ingest.bitrate_bps);
  h.fps.textContent = ingest.fps.toFixed(1);
  h.keyframes.textContent = ingest.keyframe_interval_s === null ? "–" : `${ingest.keyframe_interval_s.toFixed(1)} s`;
  const lost = ingest.packets_lost;
  h.loss.replaceChildren(
    `${(ingest.packet_loss * 100).toFixed(2)} %`,
    el("small", { class: "hint" }, ` ${lost} of ${lost + ingest.packets_received}`),
  );
  h.resolution.textContent = ingest.width ? `${ingest.width}×${ingest.height}` : "–";
  const video = CODECS[ingest.video_codec] ?? ingest.video_codec;
  const audio = CODECS[ingest.audio_codec] ?? ingest.audio_codec;
  h.codec.textContent = [video, audio].filter(Boolean).join(" + ") || "–";
}

function renderPast(stream) {
  const watch = `/watch/${encodeURIComponent(stream.slug)}`;
  ui.past.replaceChildren(
    ...state.broadcasts.map((b) =>
      el(
        "tr",
        {},
        el("td", { "data-label": "Started" }, when(b.started_at)),
        el("td", { "data-label": "Length" }, length(b.started_at, b.ended_at)),
        el("td", { class: "num", "data-label": "Peak viewers" }, String(b.peak_viewers)),
        el("td", { class: "num", "data-label": "Unique viewers" }, String(b.unique_viewers)),
        el(
          "td",
          { "data-label": "Recording" },
          ...(b.recording
            ? [
                el("a", { href: `${watch}?recording=${b.id}`, "aria-label": `Watch the recording of ${when(b.started_at)}` }, "Watch"),
                " ",
                el(
                  "button",
                  {
                    type: "button",
                    class: "quiet small",
                    "aria-label": `Delete the recording of ${when(b.started_at)}`,
                    onclick: action(() => deleteRecording(b)),
                  },
                  "Delete",
                ),
              ]
            : [el("span", { class: "hint" }, "not kept")]),
        ),
      ),
    ),
  );
  ui.pastTable.hidden = state.broadcasts.length === 0;
  ui.noBroadcasts.hidden = state.broadcasts.length > 0;
}

function renderTips() {
  ui.tips.replaceChildren(
    ...state.tips.map((t) =>
      el(
        "li",
        {},
        el("strong", {}, money(t.amount_minor, t.currency)),
        t.message ? ` “${t.message}”` : "",
        " ",
        el("span", { class: "hint" }, new Date(t.created_at).toLocaleTimeString()),
      ),
    ),
  );
  ui.noTips.hidden = state.tips.length > 0;
}

// -- loading ----------------------------------------------------------------------------

async function loadStreams() {
  const { streams } = await api("GET", "/api/v1/streams?owner=me");
  state.streams = streams;
  if (!streams.some((s) => s.slug === state.selected)) {
    await select(streams.length ? streams[0].slug : null);
  }
}

async function loadBroadcasts() {
  const slug = state.selected;
  if (slug === null) return;
  const { broadcasts } = await api("GET", `${path(slug)}/broadcasts`);
  if (slug === state.selected) state.broadcasts = broadcasts;
}

async function loadHealth() {
  const stream = current();
  if (!stream || stream.state !== "live") {
    state.health = null;
    return;
  }
  const answer = await api("GET", `${path(stream.slug)}/health`);
  if (stream.slug === state.selected) {
    state.health = answer;
    // The socket may be behind the API (or down): the API knows when the broadcast began.
    stream.started_at = answer.started_at ?? stream.started_at;
  }
}

async function loadTips() {
  const { tips } = await api("GET", "/api/v1/me/tips?status=succeeded");
  state.tips = tips.slice(0, RECENT_TIPS);
}

function startStreamChat(slug) {
  state.chat?.stop();
  state.viewers = null;
  // A fresh copy of the panel: the previous stream's lines go, and so do the listeners its
  // chat put on the panel's elements.
  const panel = CHAT_PANEL.cloneNode(true);
  ui.chat.replaceWith(panel);
  ui.chat = panel;
  state.chat = startChat(ui.chat, slug, {
    state: (value, event) => {
      const stream = current();
      if (!stream || stream.slug !== slug) return;
      // Someone ended the broadcast (the owner elsewhere, a moderator, the platform).
      const ended = event?.reason ? endedMessage(event) : "";
      const was = stream.state;
      stream.state = value;
      if (value === "live" && was !== "live") stream.started_at = new Date().toISOString();
      if (value !== "live") state.health = null;
      // This page says itself when its own broadcast starts and stops; others are told here.
      if (state.ownBroadcast) {
        if (value !== "live") state.ownBroadcast = false;
      } else if (value !== was && !ended) {
        status(value === "live" ? "Live from another publisher (OBS?)." : "The stream is offline.");
      }
      if (ended) {
        status(ended);
        // The server closed this page's session: let go of it (and of its connection state).
        endSession().catch(() => {});
      }
      render();
      if (value === "live") loadHealth().then(render, () => {});
      else loadBroadcasts().then(render, () => {}); // it just ended: it is a past one now
    },
    viewers: (count) => {
      state.viewers = count;
      renderDashboard(current() ?? {});
    },
    tip: () => loadTips().then(renderTips, () => {}),
  });
}

/** Whether the stream's moderators may end its broadcasts (off unless the owner says so). */
async function loadEndSettings(slug) {
  const box = ui.editForm.elements.moderators_may_end;
  box.checked = false;
  const settings = await api("GET", `${path(slug)}/end-settings`);
  if (state.selected === slug) box.checked = settings.moderators_may_end;
}

async function select(slug) {
  if (slug === state.selected) return;
  state.selected = slug;
  state.broadcasts = [];
  state.health = null;
  show(ui.error, "");
  const stream = current();
  if (stream) {
    ui.editForm.elements.title.value = stream.title;
    ui.editForm.elements.visibility.value = stream.visibility;
    loadEndSettings(slug).catch(fail);
    startStreamChat(slug);
  } else {
    state.chat?.stop();
    state.chat = null;
  }
  render();
  if (slug !== null) {
    await Promise.all([loadBroadcasts(), loadHealth()]).catch(fail);
    render();
  }
}

// -- actions ----------------------------------------------------------------------------

async function startCamera() {
  if (state.camera) return state.camera;
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("this browser cannot use a camera here (a secure origin is needed)");
  }
  state.camera = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
    audio: true,
  });
  ui.preview.srcObject = state.camera;
  return state.camera;
}

function stopCamera() {
  for (const track of state.camera?.getTracks() ?? []) track.stop();
  state.camera = null;
  ui.preview.srcObject = null;
}

/** Say how the broadcast is doing; called again on every connection state change. */
function liveStatus() {
  const session = state.session;
  if (!session) return;
  const slug = state.selected;
  const codec = session.h264 ? "H.264" : "no H.264 in this browser";
  const connection = session.pc.connectionState;
  if (connection === "connected") status(`Live on ${slug} (${codec}).`);
  else if (connection === "failed" || connection === "disconnected") {
    status(`Connection ${connection}: press Stop, then Go live again.`);
  } else status(`Going live on ${slug} (${codec}): connecting…`);
}

async function endSession() {
  const session = state.session;
  state.session = null;
  if (session) await session.stop();
}

async function deleteRecording(broadcast) {
  if (!window.confirm(`Delete the recording of ${when(broadcast.started_at)} for good?`)) return;
  await api("DELETE", `${path(state.selected)}/recordings/${broadcast.id}`);
  status("Recording deleted.");
  await loadBroadcasts();
}

ui.createForm.addEventListener(
  "submit",
  action(async () => {
    const form = new FormData(ui.createForm);
    let created;
    try {
      created = await api("POST", "/api/v1/streams", {
        slug: form.get("slug"),
        title: form.get("title") || "",
        visibility: form.get("visibility"),
      });
    } catch (err) {
      throw new Error(err.explain ? err.explain() : err.message);
    }
    state.keys.set(created.stream.slug, created.stream_key);
    ui.createForm.reset();
    state.streams = [...state.streams, created.stream];
    await select(created.stream.slug);
    status(`Created ${created.stream.slug}. Its key for OBS is shown below, this once.`);
  }),
);

ui.editForm.addEventListener(
  "submit",
  action(async () => {
    const form = new FormData(ui.editForm);
    let updated;
    try {
      updated = await api("PATCH", path(state.selected), {
        title: form.get("title"),
        visibility: form.get("visibility"),
      });
    } catch (err) {
      throw new Error(err.explain ? err.explain() : err.message);
    }
    state.streams = state.streams.map((s) => (s.slug === updated.stream.slug ? updated.stream : s));
    const ending = { moderators_may_end: form.get("moderators_may_end") === "on" };
    await api("PUT", `${path(updated.stream.slug)}/end-settings`, ending);
    status("Saved.");
  }),
);

ui.deleteStream.addEventListener(
  "click",
  action(async () => {
    const slug = state.selected;
    if (!window.confirm(`Delete the stream ${slug}, its chat and its key for good?`)) return;
    await api("DELETE", path(slug));
    state.keys.delete(slug);
    state.streams = state.streams.filter((s) => s.slug !== slug);
    await select(state.streams.length ? state.streams[0].slug : null);
    status(`Deleted ${slug}.`);
  }),
);

ui.newKey.addEventListener(
  "click",
  action(async () => {
    const slug = state.selected;
    if (!window.confirm("Make a new key? The current one stops working at once: OBS will need the new one.")) return;
    const { stream_key: key } = await api("POST", `${path(slug)}/key`);
    state.keys.set(slug, key);
    status("New key made: it is shown below this once, and the old one no longer works.");
  }),
);

ui.copyKey.addEventListener(
  "click",
  action(async () => {
    await navigator.clipboard.writeText(state.keys.get(state.selected) ?? "");
    status("Key copied: paste it into OBS as the Bearer token.");
  }),
);

ui.camera.addEventListener(
  "click",
  action(async () => {
    if (state.camera) stopCamera();
    else await startCamera();
  }),
);

ui.goLive.addEventListener(
  "click",
  action(async () => {
    const slug = state.selected;
    if (current()?.state === "live") {
      const ok = window.confirm("The stream is live from another publisher (OBS?). Take over from this browser?");
      if (!ok) return;
    }
    const camera = await startCamera();
    status("Connecting…");
    // A fresh token each time: the page never needs (or keeps) the stream key to go live.
    const { token } = await api("POST", `${path(slug)}/publish-token`);
    state.ownBroadcast = true;
    try {
      state.session = await publish(whipUrl(slug), token, camera, { onConnectionState: liveStatus });
    } catch (err) {
      state.ownBroadcast = false;
      status(""); // not "Connecting…": the refusal says why
      throw err;
    }
    liveStatus();
  }),
);

ui.stop.addEventListener(
  "click",
  action(async () => {
    await endSession();
    status("Stopped: the stream is offline.");
  }),
);

addEventListener("pagehide", () => state.session?.abandon());

setInterval(() => {
  if (ui.studio.hidden || state.busy) return;
  // The past broadcasts too: a broadcast is written as ended a moment after its socket
  // event says so, and its audience figures a moment later still.
  Promise.all([loadStreams(), loadBroadcasts()]).then(render, () => {});
}, LIST_REFRESH_MS);
setInterval(() => {
  if (ui.studio.hidden || current()?.state !== "live") return;
  loadHealth().then(render, () => {});
}, HEALTH_REFRESH_MS);
// The "live for" clock.
setInterval(() => {
  if (!ui.dashboard.hidden) renderDashboard(current() ?? {});
}, 1000);

(async () => {
  let user;
  try {
    user = await me();
  } catch (err) {
    return fail(err);
  }
  if (!user) {
    $("login-link").href = withNext("/login");
    $("signup-link").href = withNext("/signup");
    ui.signedOut.hidden = false;
    return;
  }
  if (user.role === "viewer") {
    ui.notCreator.hidden = false;
    return;
  }
  ui.studio.hidden = false;
  try {
    await Promise.all([loadStreams(), loadTips()]);
  } catch (err) {
    fail(err);
  }
  render();
})();
