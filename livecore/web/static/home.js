// The home page: who is live now, refreshed every few seconds.
import { api, el } from "./api.js";
import "./header.js";

const REFRESH_MS = 10_000;
const list = document.getElementById("streams");
const status = document.getElementById("status");

/** The stream's latest picture; public streams only (the others need a playback token). */
function thumbnail(stream) {
  if (stream.visibility !== "public") return "";
  const img = el("img", {
    class: "thumb",
    loading: "lazy", // before src: set after it, the picture would already be on its way
    alt: "",
    src: `/hls/${encodeURIComponent(stream.slug)}/thumb.jpg`,
  });
  img.addEventListener("error", () => img.remove()); // none yet: the next refresh tries again
  return img;
}

function card(stream) {
  return el(
    "li",
    {},
    el(
      "a",
      { href: `/watch/${encodeURIComponent(stream.slug)}` },
      thumbnail(stream),
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
