// The home page: who is live now (thumbnail, title, creator, viewers, for how long), the
// creators' channels (offline streams with their newest recordings), and a search over
// titles and creator names. The lists are refreshed in place every few seconds: the listing
// API is cached for a second per node, so a crowd on this page costs a node one query a
// second, not one per viewer. Nothing is asked while the page is hidden.
import { el, errorFrom, recordingLabel } from "./api.js";
import "./header.js";

const LIVE_EVERY_MS = 5000;
const CHANNELS_EVERY_MS = 30_000;
// Thumbnails are remade every 10 s; viewers in the same 30 s ask for the same URL, which a
// CDN and the browser cache can answer.
const THUMB_EVERY_MS = 30_000;
const TYPING_MS = 250;

const $ = (id) => document.getElementById(id);
const form = $("search");
const input = $("q");
const liveList = $("streams");
const liveStatus = $("status");
const channelList = $("channels");
const channelStatus = $("channels-status");

let query = new URLSearchParams(location.search).get("q")?.trim() || "";
let skewMs = 0; // the server's clock minus ours, from the Date header, for "live for"
const liveCards = new Map(); // slug -> {item, parts} of the cards shown, kept between looks

async function listing(state) {
  const params = new URLSearchParams({ state });
  if (query) params.set("q", query);
  const response = await fetch(`/api/v1/streams?${params}`, {
    headers: { Accept: "application/json" },
    credentials: "same-origin",
  });
  if (!response.ok) throw await errorFrom(response);
  const date = Date.parse(response.headers.get("Date") || "");
  // The Date header is cut to the second, so a skew within its resolution is no skew: taking
  // it would make "live for" count up to a second short (65 minutes read as 1 h 4 min).
  if (!Number.isNaN(date)) {
    const skew = date - Date.now();
    skewMs = Math.abs(skew) > 2000 ? skew : 0;
  }
  return (await response.json()).streams;
}

function watchUrl(stream) {
  return `/watch/${encodeURIComponent(stream.slug)}`;
}

/** "live for 1 h 5 min": from the stream's start to now, by the server's clock. */
function liveFor(stream) {
  const minutes = Math.floor((Date.now() + skewMs - Date.parse(stream.started_at)) / 60_000);
  if (!(minutes >= 1)) return "just started";
  const h = Math.floor(minutes / 60);
  return `live for ${h ? `${h} h ${minutes % 60} min` : `${minutes} min`}`;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** "Last live 3 days ago" */
function lastLive(stream) {
  const ended = stream.ended_at || stream.recordings?.[0]?.ended_at;
  if (!ended) return "Not live yet";
  const seconds = (Date.parse(ended) - Date.now() - skewMs) / 1000;
  const units = [
    ["year", 365 * 86400],
    ["month", 30 * 86400],
    ["week", 7 * 86400],
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
  ];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return `Last live ${relative.format(Math.round(seconds / size), unit)}`;
  }
  return "Last live just now";
}

function thumbUrl(stream) {
  const round = Math.floor((Date.now() + skewMs) / THUMB_EVERY_MS);
  return `/hls/${encodeURIComponent(stream.slug)}/thumb.jpg?at=${round}`;
}

/** Show the stream's latest picture: public streams only (the others need a token). */
function updateThumb(parts, stream) {
  const open = stream.visibility === "public";
  parts.note.hidden = open;
  if (!open) {
    parts.img.hidden = true;
    return;
  }
  const url = thumbUrl(stream);
  const current = parts.img.getAttribute("src");
  if (current === url) return;
  if (!current || parts.img.hidden) {
    parts.img.src = url; // none yet (404): hidden, and the next round tries again
    return;
  }
  // The old picture stays until the new one has arrived: no blank flash at each refresh.
  const next = new Image();
  next.addEventListener("load", () => (parts.img.src = url));
  next.src = url;
}

function liveCard(stream) {
  let card = liveCards.get(stream.slug);
  if (!card) {
    const img = el("img", { class: "thumb", alt: "", hidden: true });
    img.addEventListener("load", () => (img.hidden = false));
    img.addEventListener("error", () => (img.hidden = true));
    const parts = {
      img,
      note: el("span", { class: "thumb-note" }, "Subscribers only"),
      box: el("span", { class: "thumb-box" }, img, el("span", { class: "badge live" }, "Live")),
      viewers: el("span", { class: "viewer-count" }),
      title: el("span", { class: "title" }),
      owner: el("span", { class: "owner" }),
      since: el("span", { class: "since" }),
    };
    parts.box.append(parts.note, parts.viewers);
    const link = el("a", {}, parts.box, parts.title, parts.owner, parts.since);
    card = { item: el("li", {}, link), link, parts };
    liveCards.set(stream.slug, card);
  }
  const { parts } = card;
  card.link.href = watchUrl(stream);
  parts.title.textContent = stream.title || stream.slug;
  parts.owner.textContent = stream.owner.display_name || "";
  const count = stream.viewers ?? 0;
  parts.viewers.textContent = `${count} watching`;
  parts.since.textContent = liveFor(stream);
  updateThumb(parts, stream);
  return card.item;
}

/** Put `items` in `list` in this order, moving only what moved; focus stays where it was. */
function place(list, items) {
  const same = items.length === list.children.length && items.every((item, i) => list.children[i] === item);
  if (same) return;
  const focused = document.activeElement;
  list.replaceChildren(...items);
  if (focused && focused !== document.activeElement && list.contains(focused)) focused.focus();
}

function say(node, text) {
  if (node.textContent !== text) node.textContent = text; // a live region: only real news
}

function quoted() {
  return `“${query}”`;
}

let liveRound = 0;
let liveQuery = null; // the search the live list last showed
async function refreshLive() {
  const round = ++liveRound;
  let streams;
  try {
    streams = await listing("live");
  } catch (err) {
    if (round === liveRound) say(liveStatus, `Could not load the live streams: ${err.message}`);
    return;
  }
  if (round !== liveRound) return; // the search changed while this was on its way
  const shown = new Set(streams.map((s) => s.slug));
  const before = new Set(liveCards.keys());
  for (const slug of before) if (!shown.has(slug)) liveCards.delete(slug);
  place(liveList, streams.map(liveCard));
  // A stream that went live or offline also leaves or joins the channels: look again now.
  const changed = before.size !== shown.size || [...shown].some((slug) => !before.has(slug));
  if (changed && liveQuery === query) schedule("channels", refreshChannels, CHANNELS_EVERY_MS);
  liveQuery = query;
  if (streams.length) say(liveStatus, "");
  else say(liveStatus, query ? `No live stream matches ${quoted()}.` : "Nobody is live right now.");
}

function channelCard(stream) {
  const past = stream.recordings || [];
  return el(
    "li",
    { class: "channel" },
    el(
      "a",
      { href: watchUrl(stream), class: "channel-link" },
      el("span", { class: "title" }, stream.title || stream.slug),
      el("span", { class: "owner" }, stream.owner.display_name || ""),
    ),
    el("p", { class: "since" }, lastLive(stream)),
    past.length
      ? el(
          "ul",
          { class: "past", "aria-label": `Past broadcasts of ${stream.title || stream.slug}` },
          ...past.map((r) =>
            el("li", {}, el("a", { href: `${watchUrl(stream)}?recording=${r.id}` }, recordingLabel(r))),
          ),
        )
      : el("p", { class: "hint" }, "No recordings kept."),
  );
}

let channelRound = 0;
async function refreshChannels() {
  const round = ++channelRound;
  let streams;
  try {
    streams = await listing("offline");
  } catch (err) {
    if (round === channelRound) say(channelStatus, `Could not load the channels: ${err.message}`);
    return;
  }
  if (round !== channelRound) return;
  // Rebuilt only when something in it changed, so keyboard focus is not lost for nothing.
  const key = JSON.stringify(streams.map((s) => [s.slug, s.title, s.ended_at, s.recordings]));
  if (channelList.dataset.key !== key) {
    channelList.dataset.key = key;
    channelList.replaceChildren(...streams.map(channelCard));
  }
  if (streams.length) say(channelStatus, "");
  else say(channelStatus, query ? `No channel matches ${quoted()}.` : "No channels yet.");
}

// -- refreshing: on a timer while visible, at once when the page comes back or the search
// changes. Each list keeps its own timer; a refresh restarts it.
const timers = { live: null, channels: null };

function schedule(name, refresh, everyMs) {
  clearTimeout(timers[name]);
  timers[name] = null;
  if (document.hidden) return; // resumed by visibilitychange
  refresh().finally(() => {
    clearTimeout(timers[name]);
    if (!document.hidden) timers[name] = setTimeout(() => schedule(name, refresh, everyMs), everyMs);
  });
}

function refreshAll() {
  schedule("live", refreshLive, LIVE_EVERY_MS);
  schedule("channels", refreshChannels, CHANNELS_EVERY_MS);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refreshAll();
});

function search(text) {
  const next = text.trim();
  if (next === query) return;
  query = next;
  const url = new URL(location.href);
  if (query) url.searchParams.set("q", query);
  else url.searchParams.delete("q");
  history.replaceState(null, "", url);
  refreshAll();
}

let typing = null;
input.value = query;
input.addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(() => search(input.value), TYPING_MS);
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(typing);
  search(input.value);
});

refreshAll();
