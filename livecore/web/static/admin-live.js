// Live now: every live stream with its thumbnail, viewers and ingest health, and a form to end
// its broadcast with a reason (optionally blocking publishing for a while).
import { api, el } from "./api.js";
import { $, fail, hooks, say } from "./admin-page.js";

const BLOCKS = [["", "No block"], ["3600", "1 hour"], ["86400", "24 hours"], ["604800", "7 days"]];

function healthWords(answer) {
  if (!answer) return "Ingest figures are unavailable.";
  const ingest = answer.ingest;
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
    // The end is under way (202): the card goes now, as the public listing (cached for a
    // second) may still call the stream live.
    form.closest("li").remove();
    $("no-live").hidden = $("live").children.length > 0;
    hooks.changed();
  } catch (err) {
    button.disabled = false;
    fail(err);
  }
}

function card(stream, health) {
  const name = stream.title || stream.slug;
  const thumb = el("img", {
    class: "thumb", src: `/hls/${encodeURIComponent(stream.slug)}/thumb.jpg`,
    alt: `Latest picture of ${name}`, width: 320, height: 180,
  });
  // No thumbnail yet (the first comes a few seconds in): say so instead of a broken image.
  thumb.addEventListener("error", () =>
    thumb.replaceWith(el("p", { class: "thumb hint" }, "No picture yet.")), { once: true });
  const blocks = el("select", { name: "block" }, ...BLOCKS.map(([v, t]) => el("option", { value: v }, t)));
  const form = el(
    "form", { "aria-label": `End ${name}` },
    el("label", {}, "Reason", el("input", { name: "reason", maxLength: 500, autocomplete: "off" })),
    el("label", {}, "Block publishing", blocks),
    el("button", { type: "submit", class: "live" }, "End broadcast"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    end(stream, form);
  });
  const viewers = `${stream.viewers} viewer${stream.viewers === 1 ? "" : "s"}`;
  return el(
    "li", { "aria-label": name },
    thumb,
    el("p", { class: "title" }, el("a", { href: `/watch/${encodeURIComponent(stream.slug)}` }, name)),
    el("p", { class: "meta" }, `${stream.owner.display_name} · ${viewers} · ${stream.visibility}`),
    el("p", { class: "health" }, healthWords(health)),
    form,
  );
}

export async function loadLive() {
  const { streams } = await api("GET", "/api/v1/streams?state=live");
  // Each stream's ingest figures (from this node's publishers), asked all at once.
  const healths = await Promise.all(
    streams.map((s) =>
      api("GET", `/api/v1/streams/${encodeURIComponent(s.slug)}/health`).catch(() => null),
    ),
  );
  $("live").replaceChildren(...streams.map((s, i) => card(s, healths[i])));
  $("no-live").hidden = streams.length > 0;
}
