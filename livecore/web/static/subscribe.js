// Subscribing from the watch page: a "Subscribe" button and its dialog with the creator's
// tiers and their monthly prices. With the built-in test provider the subscription is active
// at once; with Stripe the server makes a Checkout Session and the browser goes to Stripe's
// page, which comes back to /subscriptions (it confirms the subscription there). A viewer of a
// subscriber-only stream is offered this instead of an error, and the page plays the stream
// as soon as the subscription lets them in (`on.subscribed()`).
import { ApiError, api, el } from "./api.js";
import { me, withNext } from "./header.js";
import { formatMoney, idempotencyKey, waitWords } from "./amounts.js";

// sessionStorage: what was being bought when the browser left for Stripe's checkout page.
export const CHECKOUT_KEY = "livecore.checkout";

export function priceWords(tier) {
  return `${formatMoney(tier.price_minor, tier.currency)} a month`;
}

function sentence(text) {
  const t = String(text || "").trim();
  if (!t) return "";
  const capital = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/**
 * Put "Subscribe" in `slot` for `stream` (from the streams API); `status` is the page's line
 * for what happened. `on.subscribed()` runs when a subscription lets the viewer in.
 */
export async function startSubscribe(slot, slug, stream, status, on) {
  const path = `/api/v1/streams/${encodeURIComponent(slug)}/tiers`;
  const [user, offer] = await Promise.all([me().catch(() => null), api("GET", path)]);
  if (user && user.id === stream.owner.id) return; // their own tiers
  const creator = stream.owner.display_name || "this creator";
  const forSubscribers = stream.visibility === "subscribers";

  function tell(text) {
    status.textContent = text;
    status.hidden = !text;
  }

  if (user) {
    const { subscriptions } = await api("GET", "/api/v1/me/subscriptions");
    const mine = subscriptions.find((s) => s.creator.id === stream.owner.id && s.access);
    if (mine) return showSubscribed(mine);
  }
  const tiers = offer.tiers;
  if (!tiers.length) {
    if (forSubscribers) tell(`This stream is for subscribers of ${creator}, who offers no subscription yet.`);
    return;
  }
  if (forSubscribers) tell(`This stream is for subscribers of ${creator}: subscribe to watch.`);

  function showSubscribed(sub) {
    slot.querySelector(".subscribe-open")?.remove();
    const badge = el("a", { href: "/subscriptions", class: "subscribed" }, `Subscribed: ${sub.tier.name}`);
    slot.prepend(badge);
  }

  const opener = el("button", { type: "button", class: "subscribe-open", "aria-haspopup": "dialog" }, "Subscribe");
  const dialog = el("dialog", { class: "sheet", "aria-labelledby": "subscribe-title" });
  const title = el("h2", { id: "subscribe-title" }, `Subscribe to ${creator}`);
  const close = el("button", { type: "button", class: "quiet", onclick: () => dialog.close() }, "Close");
  slot.prepend(opener);
  document.body.append(dialog);
  opener.addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", () => opener.isConnected && opener.focus());
  const testNote = offer.test_mode ? el("p", { class: "test-mode" }, "Test mode: no money moves.") : "";

  if (!user) {
    const list = el("ul", { class: "tiers" }, ...tiers.map((t) => el("li", {}, el("strong", {}, t.name), ` · ${priceWords(t)}`)));
    const prompt = el("p", {},
      el("a", { href: withNext("/login") }, "Log in"), " or ",
      el("a", { href: withNext("/signup") }, "sign up"), " to subscribe.",
    ); // prettier-ignore
    dialog.append(title, testNote, list, prompt, el("div", { class: "actions" }, close));
    return;
  }

  const choices = tiers.map((tier, i) => {
    const radio = el("input", { type: "radio", name: "tier", value: String(tier.id), checked: i === 0 });
    const name = el("span", { class: "tier-name" }, tier.name);
    return el("label", { class: "tier check" }, radio, " ", name, " ", el("span", { class: "price" }, priceWords(tier)));
  });
  const outcome = el("p", { class: "outcome", role: "status", "aria-live": "polite" });
  const submit = el("button", { type: "submit" }, offer.test_mode ? "Confirm subscription" : "Continue to payment");
  const how = offer.test_mode
    ? "Active at once and renewed every month; cancel any time from My subscriptions."
    : "You pay on Stripe's checkout page, then come back here. Renewed every month; cancel any time from My subscriptions.";
  const form = el(
    "form",
    { class: "subscribe-form" },
    title,
    testNote,
    el("fieldset", { class: "tier-set" }, el("legend", {}, "Tier"), ...choices),
    el("p", { class: "hint" }, how),
    outcome,
    el("div", { class: "actions" }, submit, close),
  );
  dialog.append(form);

  // One Idempotency-Key per attempt at a tier, sent again when that attempt is retried.
  let attempt = null;

  function say(kind, text) {
    outcome.dataset.kind = kind;
    outcome.textContent = text;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    const id = Number(new FormData(form).get("tier"));
    const tier = tiers.find((t) => t.id === id);
    if (!attempt || attempt.tier !== id) attempt = { key: idempotencyKey(), tier: id };
    submit.disabled = true;
    say("info", offer.test_mode ? "Subscribing…" : "Opening Stripe's checkout…");
    let result;
    try {
      result = await api("POST", `/api/v1/tiers/${id}/subscribe`, { return_path: "/subscriptions" }, { "Idempotency-Key": attempt.key });
    } catch (err) {
      submit.disabled = false;
      return refused(err);
    }
    if (result.checkout_url) {
      const leaving = { slug, title: stream.title || slug, creator, tier_id: id, tier_name: tier.name };
      sessionStorage.setItem(CHECKOUT_KEY, JSON.stringify(leaving));
      say("info", "Taking you to Stripe's checkout page…");
      location.assign(result.checkout_url);
      return;
    }
    attempt = null;
    submit.disabled = false;
    const sub = result.subscription;
    dialog.close();
    showSubscribed(sub);
    slot.querySelector(".subscribed").focus(); // where the Subscribe button was
    const test = result.test_mode ? " Test mode: no money moves." : "";
    const until = sub.current_period_end ? `, renewed on ${new Date(sub.current_period_end).toLocaleDateString(undefined, { dateStyle: "medium" })}` : "";
    tell(`You are subscribed to ${creator} (${sub.tier.name}, ${priceWords(sub.tier)}${until}).${test}`);
    on.subscribed?.();
  });

  function refused(err) {
    if (!(err instanceof ApiError)) {
      return say("error", "The connection failed before an answer came. Press the button again: it repeats the same request, so you are never charged twice.");
    }
    const again = err.status === 503; // the same key asks again; nothing was charged
    if (!again) attempt = null;
    if (err.status === 401) return say("error", "You are no longer logged in: log in again to subscribe.");
    if (err.status === 409) return say("error", `${sentence(err.message)} See My subscriptions.`);
    if (err.status === 422) return say("error", err.explain({ tier: "this tier" }));
    if (again) {
      const left = waitWords(err.retryAfterS || 30);
      return say("error", `${sentence(err.message)} Try again in ${left}.`);
    }
    say("error", sentence(err.message));
  }
}
