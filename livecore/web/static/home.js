// The home page: who is live now, refreshed every few seconds.
import { api, el } from "./api.js";

const REFRESH_MS = 10_000;
const list = document.getElementById("streams");
const status = document.getElementById("status");

function card(stream) {
  return el(
    "li",
    {},
    el(
      "a",
      { href: `/watch/${encodeURIComponent(stream.slug)}` },
      el("span", { class: "title" }, stream.title || stream.slug),
      el("span", { class: "owner" }, stream.owner.display_name || ""),
    ),
  );
}

async function refresh() {
  try {
    const { streams } = await api("GET", "/api/v1/streams?state=live");
    list.replaceChildren(...streams.map(card));
    status.textContent = streams.length ? "" : "Nobody is live right now.";
  } catch (err) {
    status.textContent = `Could not load the live streams: ${err.message}`;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
