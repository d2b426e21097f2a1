// The studio: log in, pick or create a stream, see its OBS settings, rotate its key, and go
// live from this browser over WHIP. Stream keys are shown once by the API, so the page keeps
// the ones it received in memory only.
import { ApiError, api, el, recordingLabel, show } from "./api.js";
import { publish } from "./whip.js";

const LIST_REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
const ui = {
  error: $("error"),
  status: $("status"),
  who: $("who"),
  logout: $("logout"),
  login: $("login"),
  loginForm: $("login-form"),
  studio: $("studio"),
  streams: $("my-streams"),
  createForm: $("create-form"),
  selected: $("selected"),
  selectedTitle: $("selected-title"),
  watchLink: $("watch-link"),
  serverUrl: $("server-url"),
  streamKey: $("stream-key"),
  newKey: $("new-key"),
  preview: $("preview"),
  camera: $("camera"),
  goLive: $("go-live"),
  stop: $("stop"),
  recordings: $("my-recordings"),
  noRecordings: $("no-recordings"),
};

const state = {
  streams: [],
  selected: null, // slug
  recordings: [], // the selected stream's, newest first
  keys: new Map(), // slug -> stream key received by this page
  camera: null, // MediaStream
  session: null, // WhipSession while live
  busy: false,
};

function status(text) {
  ui.status.textContent = text;
}

function fail(err) {
  show(ui.error, err instanceof Error ? err.message : String(err));
}

function clearError() {
  show(ui.error, "");
}

/** Run an action from a button: one at a time, errors shown on the page. */
function action(fn) {
  return async (event) => {
    event?.preventDefault();
    if (state.busy) return;
    state.busy = true;
    clearError();
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

function whipUrl(slug) {
  return `${location.origin}/whip/${encodeURIComponent(slug)}`;
}

function render() {
  const live = state.session !== null;
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
            disabled: live,
            onclick: () => select(s.slug),
          },
          `${s.title || s.slug} `,
          el("span", { class: `badge${s.state === "live" ? " live" : ""}` }, s.state),
        ),
      ),
    ),
  );
  const stream = state.streams.find((s) => s.slug === state.selected);
  ui.selected.hidden = !stream;
  if (!stream) return;
  ui.selectedTitle.textContent = stream.title || stream.slug;
  ui.watchLink.href = `/watch/${encodeURIComponent(stream.slug)}`;
  ui.serverUrl.textContent = whipUrl(stream.slug);
  ui.streamKey.textContent =
    state.keys.get(stream.slug) ?? "hidden (shown once when made): press New key for a new one";
  ui.camera.textContent = state.camera ? "Camera off" : "Camera on";
  ui.camera.disabled = live;
  ui.goLive.disabled = live;
  ui.stop.disabled = !live;
  ui.newKey.disabled = live;
  const watch = `/watch/${encodeURIComponent(stream.slug)}`;
  ui.recordings.replaceChildren(
    ...state.recordings.map((r) =>
      el(
        "li",
        {},
        el("a", { href: `${watch}?recording=${r.id}` }, recordingLabel(r)),
        " ",
        el("button", { type: "button", class: "quiet", onclick: action(() => deleteRecording(r)) }, "Delete"),
      ),
    ),
  );
  ui.noRecordings.hidden = state.recordings.length > 0;
}

async function loadRecordings() {
  const slug = state.selected;
  if (slug === null) return;
  const { recordings } = await api("GET", `/api/v1/streams/${encodeURIComponent(slug)}/recordings`);
  if (slug === state.selected) state.recordings = recordings;
}

async function deleteRecording(recording) {
  if (!window.confirm(`Delete the recording of ${recordingLabel(recording)} for good?`)) return;
  const slug = encodeURIComponent(state.selected);
  await api("DELETE", `/api/v1/streams/${slug}/recordings/${recording.id}`);
  status("Recording deleted.");
  await loadRecordings();
}

function select(slug) {
  state.selected = slug;
  state.recordings = [];
  clearError();
  render();
  loadRecordings().then(render, fail);
}

async function loadStreams() {
  const { streams } = await api("GET", "/api/v1/streams?owner=me");
  state.streams = streams;
  if (!streams.some((s) => s.slug === state.selected)) {
    state.selected = streams.length ? streams[0].slug : null;
    state.recordings = [];
  }
  await loadRecordings(); // a broadcast's recording is listed a moment after it ends
  render();
}

async function showStudio(user) {
  ui.login.hidden = true;
  ui.studio.hidden = false;
  ui.who.textContent = `${user.display_name} (${user.role})`;
  ui.who.hidden = false;
  ui.logout.hidden = false;
  await loadStreams();
  status(state.streams.length ? "" : "Create your first stream.");
}

function showLogin() {
  ui.studio.hidden = true;
  ui.login.hidden = false;
  ui.who.hidden = true;
  ui.logout.hidden = true;
  status("");
}

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

ui.loginForm.addEventListener(
  "submit",
  action(async () => {
    const form = new FormData(ui.loginForm);
    status("Logging in…");
    const { user } = await api("POST", "/api/v1/auth/login", {
      email: form.get("email"),
      password: form.get("password"),
    });
    ui.loginForm.reset();
    await showStudio(user);
  }),
);

ui.logout.addEventListener(
  "click",
  action(async () => {
    await endSession();
    stopCamera();
    await api("POST", "/api/v1/auth/logout");
    state.keys.clear();
    state.streams = [];
    state.selected = null;
    showLogin();
  }),
);

ui.createForm.addEventListener(
  "submit",
  action(async () => {
    const form = new FormData(ui.createForm);
    const created = await api("POST", "/api/v1/streams", {
      slug: form.get("slug"),
      title: form.get("title") || "",
    });
    state.keys.set(created.stream.slug, created.stream_key);
    state.selected = created.stream.slug;
    ui.createForm.reset();
    await loadStreams();
    status(`Created ${created.stream.slug}. Its key is shown below this once.`);
  }),
);

ui.newKey.addEventListener(
  "click",
  action(async () => {
    const slug = state.selected;
    const { stream_key: key } = await api("POST", `/api/v1/streams/${encodeURIComponent(slug)}/key`);
    state.keys.set(slug, key);
    status("New key made: the old one no longer works.");
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
    const key = state.keys.get(slug);
    if (!key) {
      throw new Error(
        "this page does not know the stream key: press New key first (OBS then needs the new key too)",
      );
    }
    const camera = await startCamera();
    status("Connecting…");
    state.session = await publish(whipUrl(slug), key, camera, { onConnectionState: liveStatus });
    liveStatus();
    await loadStreams();
  }),
);

ui.stop.addEventListener(
  "click",
  action(async () => {
    await endSession();
    status("Stopped: the stream is offline.");
    await loadStreams();
  }),
);

addEventListener("pagehide", () => state.session?.abandon());

// Keep the live/offline badges current: broadcasts start and end on the server's time.
setInterval(() => {
  if (!ui.studio.hidden && !state.busy) loadStreams().catch(() => {});
}, LIST_REFRESH_MS);

(async () => {
  try {
    const { user } = await api("GET", "/api/v1/me");
    await showStudio(user);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showLogin();
    else fail(err);
  }
})();
