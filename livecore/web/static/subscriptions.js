// "My subscriptions" (/subscriptions): each subscription's creator, tier, price, status and
// renewal date, with Cancel (at the end of the paid period) and Resume. Stripe's checkout page
// comes back here (?checkout=success|canceled): the page says so, and waits for Stripe's
// confirmation (its webhook makes the subscription) before calling it active.
import { ApiError, api, el, show } from "./api.js";
import { me, withNext } from "./header.js";
import { CHECKOUT_KEY, priceWords } from "./subscribe.js";

const CONFIRM_EVERY_MS = 2000;
const CONFIRM_TRIES = 30; // about a minute; then the page says to look again later
const $ = (id) => document.getElementById(id);
const list = $("subscriptions");
const error = $("error");
const status = $("status");

let subscriptions = [];
let waiting = false; // back from checkout, until Stripe confirms: no "no subscriptions yet"

function day(iso) {
  return iso ? new Date(iso).toLocaleDateString(undefined, { dateStyle: "long" }) : "";
}

function fail(err) {
  show(error, err instanceof ApiError ? err.explain() : `Something went wrong: ${err.message || err}`);
}

/** The subscription's state in words, with the date that matters. */
function stateWords(sub) {
  const end = day(sub.current_period_end);
  switch (sub.status) {
    case "active":
      if (sub.cancel_at_period_end) return end ? `Canceled: you keep access until ${end}` : "Canceled at the end of the period";
      return end ? `Active, renews on ${end}` : "Active";
    case "past_due":
      return sub.grace_until
        ? `Payment failed: the card is tried again, and you keep access until ${day(sub.grace_until)}`
        : "Payment failed: the card is tried again";
    case "incomplete":
      return "Waiting for the payment";
    case "canceled":
      return "Ended";
    default:
      return sub.status;
  }
}

function item(sub) {
  const heading = `sub-${sub.id}`;
  const actions = el("div", { class: "actions" });
  if (sub.status !== "canceled") {
    const resume = sub.cancel_at_period_end;
    const button = el(
      "button",
      { type: "button", class: resume ? "" : "quiet", "aria-describedby": heading },
      resume ? "Resume" : "Cancel",
    );
    button.addEventListener("click", () => change(sub, resume ? "resume" : "cancel", button));
    actions.append(button);
  }
  return el(
    "li",
    { class: "panel" },
    el("h2", { id: heading }, `${sub.creator.display_name} · ${sub.tier.name}`),
    el("p", { class: "price" }, priceWords(sub.tier), sub.test_mode ? el("span", { class: "tag" }, "Test mode") : ""),
    el("p", { class: `sub-state sub-${sub.status}` }, stateWords(sub)),
    actions,
  );
}

function render() {
  list.replaceChildren(...subscriptions.map(item));
  if (!subscriptions.length && !waiting) {
    list.replaceChildren(
      el("li", { class: "panel" }, "No subscriptions yet. Subscribe from a stream's page: ", el("a", { href: "/" }, "see who is live"), "."),
    );
  }
  $("test-mode").hidden = !subscriptions.some((s) => s.test_mode);
}

async function load() {
  ({ subscriptions } = await api("GET", "/api/v1/me/subscriptions"));
  render();
}

async function change(sub, action, button) {
  button.disabled = true;
  show(error, "");
  try {
    const { subscription } = await api("POST", `/api/v1/me/subscriptions/${sub.id}/${action}`);
    subscriptions = subscriptions.map((s) => (s.id === subscription.id ? subscription : s));
    render();
    const who = subscription.creator.display_name;
    const end = day(subscription.current_period_end);
    status.textContent =
      action === "cancel"
        ? `Canceled: you keep access to ${who} until ${end}, and you will not be charged again.`
        : `Resumed: your subscription to ${who} renews on ${end}.`;
    // Keyboard users stay where they were: on the button that now undoes it.
    document.querySelector(`[aria-describedby="sub-${subscription.id}"]`)?.focus();
  } catch (err) {
    button.disabled = false;
    fail(err);
  }
}

/** Back from Stripe's checkout page: say so, and wait for the subscription to be confirmed. */
async function checkoutReturn() {
  const params = new URLSearchParams(location.search);
  const outcome = params.get("checkout");
  if (!outcome) return;
  history.replaceState(null, "", location.pathname); // a reload shows the list only
  let leaving = null;
  try {
    leaving = JSON.parse(sessionStorage.getItem(CHECKOUT_KEY) || "null");
  } catch {
    leaving = null;
  }
  const box = $("checkout");
  const text = $("checkout-text");
  const back = $("checkout-back");
  box.hidden = false;
  if (leaving) {
    back.replaceChildren(el("a", { href: `/watch/${encodeURIComponent(leaving.slug)}` }, `Back to ${leaving.title}`));
    back.hidden = false;
  }
  const what = leaving ? `${leaving.creator} (${leaving.tier_name})` : "the creator";
  if (outcome !== "success") {
    sessionStorage.removeItem(CHECKOUT_KEY);
    $("checkout-heading").textContent = "Checkout canceled";
    text.textContent = `You left Stripe's checkout page before paying: you have not been charged, and you are not subscribed to ${what}.`;
    return;
  }
  $("checkout-heading").textContent = "Thank you!";
  text.textContent = `Checkout is complete. Waiting for Stripe to confirm your subscription to ${what}…`;
  waiting = true;
  render();
  for (let i = 0; i < CONFIRM_TRIES; i += 1) {
    const found = subscriptions.find((s) => (leaving ? s.tier.id === leaving.tier_id : true) && s.access);
    if (found) {
      waiting = false;
      sessionStorage.removeItem(CHECKOUT_KEY);
      text.textContent = `You are subscribed to ${found.creator.display_name} (${found.tier.name}). ${stateWords(found)}.`;
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, CONFIRM_EVERY_MS));
    await load();
  }
  waiting = false;
  render();
  text.textContent = `Stripe has not confirmed your subscription to ${what} yet. It appears in this list once it does: look again in a few minutes.`;
}

async function main() {
  const user = await me();
  if (!user) {
    status.replaceChildren(el("a", { href: withNext("/login") }, "Log in"), " to see your subscriptions.");
    return;
  }
  await load();
  await checkoutReturn();
}

main().catch(fail);
