// Live now: every live stream with its thumbnail, viewers and ingest health, and a form to end
// its broadcast with a reason (optionally blocking publishing for a while).
import { api, el } from "./api.js";
import { $, fail, hooks, say } from "./admin-page.js";

const BLOCKS = [["", "No block"], ["3600", "1 hour"], ["86400", "24 hours"], ["604800", "7 days"]];

function healthWords(ingest) {
  if (!ingest) return "Ingest figures: the stream comes in on another server node.";
  const kbps = Math.round(ingest.bitrate_bps / 1000);
  const size = ingest.width ? `${ingest.width}×${ingest.height}, ` : "";
  const loss = (ingest.packet_loss * 100).toFixed(1);
  const stale = ingest.last_media_s > 3 ? ` No media for ${Math.round(ingest.last_media_s)} s.` : "";
  return `Ingest: ${ingest.video_codec} ${size}${ingest.fps} fps, ${kbps} kbit/s, ${loss} % lost.${stale}`;
}

async function end(stream, form) {
  const reason = form.elements.reason.value.trim();
  if (!reason) {
    fail(new Error(`Say why the broadcast of "${stream.title || stream.slug}" ends.`));
    form.elements.reason.focus();
    return;
  }
  const body = { reason };
  if (form.elements.block.value) body.block_for_s = Number(form.elements.block.value);
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const answer = await api("POST", `/api/v1/streams/${encodeURIComponent(stream.slug)}/end`, body);
    const blocked = answer.blocked_until
      ? ` Publishing is blocked until ${new Date(answer.blocked_until).toLocaleString()}.`
      : "";
    say(`Ended the broadcast of ${stream.title || stream.slug}.${blocked}`);
    // The end is under way (202): the card goes now, before the stream's state follows.
    form.closest("li").remove();
    cards.delete(stream.slug);
    $("no-live").hidden = $("live").children.length > 0;
    hooks.changed();
  } catch (err) {
    button.disabled = false;
    fail(err);
  }
}

const cards = new Map(); // slug -> its card, kept across refreshes (a reason being typed stays)
export const REFRESH_MS = 10_000;

function picture(stream) {
  const name = stream.title || stream.slug;
  // A new URL each refresh: the thumbnail is replaced every few seconds under the same name.
  const thumb = el("img", {
    class: "thumb", alt: `Latest picture of ${name}`, width: 320, height: 180,
    src: `/hls/${encodeURIComponent(stream.slug)}/thumb.jpg?at=${Date.now()}`,
  });
  // No thumbnail yet (the first comes a few seconds in): say so instead of a broken image.
  thumb.addEventListener("error", () =>
    thumb.replaceWith(el("p", { class: "thumb hint" }, "No picture yet.")), { once: true });
  return thumb;
}

function card(stream) {
  const blocks = el("select", { name: "block" }, ...BLOCKS.map(([v, t]) => el("option", { value: v }, t)));
  const form = el(
    "form", {},
    el("label", {}, "Reason", el("input", { name: "reason", maxLength: 500, autocomplete: "off" })),
    el("label", {}, "Block publishing", blocks),
    el("button", { type: "submit", class: "live" }, "End broadcast"),
  );
  const li = el(
    "li", {},
    el("div", { class: "picture" }),
    el("p", { class: "title" }, el("a", { href: `/watch/${encodeURIComponent(stream.slug)}` })),
    el("p", { class: "meta" }),
    el("p", { class: "health" }),
    form,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    end(li.stream, form);
  });
  return li;
}

/** Bring a card up to date: title, owner, viewers, picture and ingest figures. */
function update(li, stream, health) {
  const name = stream.title || stream.slug;
  li.stream = stream;
  li.setAttribute("aria-label", name);
  li.querySelector("form").setAttribute("aria-label", `End ${name}`);
  li.querySelector(".title a").textContent = name;
  const viewers = `${stream.viewers} viewer${stream.viewers === 1 ? "" : "s"}`;
  li.querySelector(".meta").textContent = `${stream.owner.display_name} · ${viewers} · ${stream.visibility}`;
  li.querySelector(".health").textContent = healthWords(health);
  // The new picture takes the old one's place once it has loaded (no flicker, and a failed
  // load keeps the last one).
  const slot = li.querySelector(".picture");
  const next = picture(stream);
  if (slot.firstChild) next.addEventListener("load", () => slot.replaceChildren(next), { once: true });
  else slot.append(next);
}

export async function loadLive() {
  // Every live stream with its viewers and ingest figures, in one answer (never cached).
  const { streams } = await api("GET", "/api/v1/admin/live");
  const live = new Set(streams.map((s) => s.slug));
  for (const [slug, li] of cards) {
    if (!live.has(slug)) {
      li.remove();
      cards.delete(slug);
    }
  }
  streams.forEach((stream) => {
    let li = cards.get(stream.slug);
    if (!li) cards.set(stream.slug, (li = card(stream)));
    update(li, stream, stream.ingest);
    $("live").append(li); // in the listing's order (moving a card keeps what is typed in it)
  });
  $("no-live").hidden = streams.length > 0;
}
