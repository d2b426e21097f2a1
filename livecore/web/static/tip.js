// Tipping from the watch page: a "Tip" button and its dialog (amount presets, a custom
// amount in the stream's currencies, a message). Each attempt to pay has its own
// Idempotency-Key, made in the browser and sent again with every retry of that attempt, so a
// retry after an unknown outcome never pays twice. With the built-in test provider the tip
// is paid at once (the dialog says it is test mode); with Stripe the server answers with a
// PaymentIntent's client_secret, and the card is taken by Stripe.js's Payment Element here.
// Stripe.js is the one script from elsewhere (the page's CSP allows it only when Stripe takes
// the payments); when it cannot load, the dialog says so and nothing is charged.
//
// The tip itself shows in the chat, for every viewer, from the room's tip event.
import { ApiError, api, el } from "./api.js";
import { me, withNext } from "./header.js";
import { formatMoney, fractionDigits, idempotencyKey, parseAmount, waitWords } from "./amounts.js";

const STRIPE_JS = "https://js.stripe.com/v3/";
const STRIPE_LOAD_MS = 15_000; // a script that has not loaded by then is taken as failed
const PRESET_STEPS = [1, 5, 10, 20]; // presets: multiples of the smallest tip
const MESSAGE_MAX = 200;

let stripeLoading = null; // the promise of window.Stripe, while loading or loaded

/** Stripe.js, loaded once per page; rejects when it cannot load (offline, blocked). */
function loadStripe() {
  if (window.Stripe) return Promise.resolve(window.Stripe);
  if (!stripeLoading) {
    stripeLoading = new Promise((resolve, reject) => {
      const script = el("script", { src: STRIPE_JS, async: true });
      const fail = (why) => {
        clearTimeout(timer);
        script.remove();
        stripeLoading = null; // the next attempt tries again
        reject(new Error(why));
      };
      const timer = setTimeout(() => fail("timed out"), STRIPE_LOAD_MS);
      script.addEventListener("load", () => {
        clearTimeout(timer);
        if (window.Stripe) resolve(window.Stripe);
        else fail("loaded without defining Stripe");
      });
      script.addEventListener("error", () => fail("did not load"));
      document.head.append(script);
    });
  }
  return stripeLoading;
}

function sentence(text) {
  const t = String(text || "").trim();
  if (!t) return "";
  const capital = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/**
 * Put the "Tip" button in `slot` for `stream` (from the streams API). `status` is the
 * page's line for what happened after a redirect back from the payment page.
 */
export async function startTips(slot, slug, stream, status) {
  const base = `/api/v1/streams/${encodeURIComponent(slug)}/tips`;
  const [user, options] = await Promise.all([me().catch(() => null), api("GET", `${base}/options`)]);
  if (user && user.id === stream.owner.id) return; // nobody tips their own stream
  const creator = stream.owner.display_name || "the creator";
  cameBackFromStripe(status);

  const opener = el("button", { type: "button", "aria-haspopup": "dialog" }, "Tip");
  const dialog = el("dialog", { class: "sheet", "aria-labelledby": "tip-title" });
  const title = el("h2", { id: "tip-title" }, `Tip ${creator}`);
  const outcome = el("p", { class: "outcome", role: "status", "aria-live": "polite" });
  const close = el("button", { type: "button", class: "quiet", onclick: () => dialog.close() }, "Close");
  slot.append(opener);
  document.body.append(dialog);
  opener.addEventListener("click", () => {
    dialog.showModal();
    if (!options.test_mode && options.publishable_key && user) loadStripe().catch(() => {});
  });
  dialog.addEventListener("close", () => opener.focus());

  if (!user || options.refusal) {
    const why = user
      ? [`You cannot tip this stream: ${options.refusal}.`]
      : [el("a", { href: withNext("/login") }, "Log in"), " or ",
         el("a", { href: withNext("/signup") }, "sign up"), ` to tip ${creator}.`]; // prettier-ignore
    dialog.append(title, el("p", {}, ...why), el("div", { class: "actions" }, close));
    return;
  }

  // -- the form --------------------------------------------------------------------------

  const currencies = options.currencies;
  const amountInput = el("input", {
    name: "amount", inputMode: "decimal", autocomplete: "off", "aria-describedby": "tip-limits",
  });
  const currencySelect = el(
    "select",
    { name: "currency" },
    ...currencies.map((c) => el("option", { value: c }, c.toUpperCase())),
  );
  const messageInput = el("input", { name: "message", maxLength: MESSAGE_MAX, autocomplete: "off" });
  const limits = el("p", { id: "tip-limits", class: "hint" });
  const presets = el("div", { class: "presets" });
  const payBox = el("div", { class: "pay-box", hidden: true });
  const submit = el("button", { type: "submit" }, "Send tip");
  const form = el(
    "form",
    { class: "tip-form", novalidate: true },
    title,
    options.test_mode
      ? el("p", { class: "test-mode" }, "Test mode: no money moves.")
      : el("p", { class: "hint" }, "You pay by card: Stripe's card form opens here after Send tip."),
    el("fieldset", { class: "preset-set" }, el("legend", {}, "Amount"), presets),
    el(
      "div",
      { class: "amount-row" },
      el("label", {}, "Tip amount", amountInput),
      currencies.length > 1 ? el("label", {}, "Currency", currencySelect) : "",
    ),
    limits,
    el("label", {}, "Tip message", messageInput),
    payBox,
    outcome,
    el("div", { class: "actions" }, submit, close),
  );
  dialog.append(form);

  const currency = () => currencySelect.value || currencies[0];
  const young = Boolean(options.new_account_until);

  function drawPresets() {
    const c = currency();
    const amounts = PRESET_STEPS.map((n) => n * options.min_minor).filter((a) => a <= options.max_minor);
    presets.replaceChildren(
      ...amounts.map((minor) => {
        const label = formatMoney(minor, c, true);
        const button = el("button", { type: "button", class: "quiet", "aria-pressed": "false" }, label);
        button.dataset.minor = minor;
        button.addEventListener("click", () => {
          const digits = fractionDigits(c);
          amountInput.value = (minor / 10 ** digits).toFixed(digits);
          markPreset();
          amountInput.dispatchEvent(new Event("input"));
        });
        return button;
      }),
    );
    const low = formatMoney(options.min_minor, c);
    const high = formatMoney(options.max_minor, c);
    limits.textContent = young
      ? `From ${low} to ${high}. New accounts may tip at most ${high} until ${when(options.new_account_until)}.`
      : `From ${low} to ${high}.`;
    markPreset();
  }

  function markPreset() {
    const minor = parseAmount(amountInput.value, currency());
    for (const b of presets.children) b.setAttribute("aria-pressed", String(Number(b.dataset.minor) === minor));
  }

  // -- attempts and their Idempotency-Keys -----------------------------------------------

  // The attempt being paid: {key, body, retry, locked}. `retry`: sending the same tip again
  // uses the same key, so the server answers with what became of it and never charges twice.
  // `locked` while its outcome is unknown: the fields cannot change until it is known (a
  // changed tip would be a second one). Once the tip exists but its card form could not load,
  // the fields stay open: the same tip again is a retry, a changed one a new attempt (the
  // first is never charged without its card form).
  let attempt = null;
  let confirming = null; // {stripe, elements, amount}: the card form is shown
  let waitUntil = 0;
  let ticker = 0;

  function say(kind, text) {
    outcome.dataset.kind = kind;
    outcome.textContent = text;
  }

  function lock(locked) {
    for (const field of [amountInput, currencySelect, messageInput]) field.disabled = locked;
    for (const b of presets.children) b.disabled = locked;
  }

  function settle() {
    attempt = null;
    confirming = null;
    payBox.replaceChildren();
    payBox.hidden = true;
    lock(false);
    submit.textContent = "Send tip";
  }

  function keepForRetry(locked) {
    attempt.retry = true;
    attempt.locked = locked;
    lock(locked);
    submit.textContent = "Try again";
  }

  function same(a, b) {
    return a.amount_minor === b.amount_minor && a.currency === b.currency && a.message === b.message;
  }

  /** While a retry is possible: "Try again" for the same tip, "Send tip" for a changed one. */
  function relabel() {
    if (!attempt?.retry || attempt.locked || confirming) return;
    const c = currency();
    const now = { amount_minor: parseAmount(amountInput.value, c), currency: c, message: messageInput.value.trim() };
    submit.textContent = same(now, attempt.body) ? "Try again" : "Send tip";
  }

  function waitFor(seconds, words) {
    waitUntil = Date.now() + seconds * 1000;
    clearInterval(ticker);
    const tick = () => {
      const left = (waitUntil - Date.now()) / 1000;
      submit.disabled = left > 0;
      if (left > 0) return say("error", words(waitWords(left)));
      clearInterval(ticker);
      say("info", ""); // the wait is over: the form says nothing more
    };
    tick();
    ticker = setInterval(tick, 1000);
  }

  /** The tip in the form, or null after saying what is wrong with it. */
  function tipInForm() {
    const c = currency();
    const minor = parseAmount(amountInput.value, c);
    const problem =
      minor === null || minor === 0
        ? "Enter an amount, like 5 or 5.00."
        : minor < options.min_minor
          ? `The smallest tip is ${formatMoney(options.min_minor, c)}.`
          : minor > options.max_minor
            ? young
              ? `New accounts may tip at most ${formatMoney(options.max_minor, c)} until ${when(options.new_account_until)}.`
              : `The largest tip is ${formatMoney(options.max_minor, c)}.`
            : "";
    if (problem) {
      say("error", problem);
      amountInput.setAttribute("aria-invalid", "true");
      amountInput.focus();
      return null;
    }
    amountInput.removeAttribute("aria-invalid");
    return { amount_minor: minor, currency: c, message: messageInput.value.trim() };
  }

  async function send() {
    if (!attempt?.locked) {
      const body = tipInForm();
      if (!body) return;
      if (!attempt?.retry || !same(body, attempt.body)) attempt = { key: idempotencyKey(), body, retry: false, locked: false };
    }
    submit.disabled = true;
    say("info", attempt.retry ? "Asking what became of your tip…" : "Sending your tip…");
    let result;
    try {
      result = await api("POST", base, attempt.body, { "Idempotency-Key": attempt.key });
    } catch (err) {
      submit.disabled = false;
      return refused(err);
    }
    submit.disabled = false;
    await answered(result);
  }

  async function answered(result) {
    const { tip } = result;
    const amount = formatMoney(tip.amount_minor, tip.currency);
    if (result.lane === "fallback") {
      settle();
      return say("warn", `${result.notice || "You have not been charged."}`);
    }
    if (tip.status === "succeeded") {
      settle();
      messageInput.value = "";
      const test = result.test_mode ? " Test mode: no money moved." : "";
      return say("ok", `Thank you! You tipped ${creator} ${amount}; it shows in the chat.${test}`);
    }
    if (tip.status === "failed") {
      settle();
      return say("error", `This tip failed (${tip.failure || "refused"}): you have not been charged.`);
    }
    if (tip.status === "pending" && result.client_secret) return showCardForm(result, amount);
    settle();
    say("info", `Your tip of ${amount} waits for the payment processor; it shows in the chat once paid.`);
  }

  function refused(err) {
    if (!(err instanceof ApiError)) {
      // No answer came: the tip may have been made. The same key finds out.
      keepForRetry(true);
      return say(
        "error",
        "The connection failed before an answer came, so it is not known whether your tip went through. " +
          "Press Try again: it sends the same tip, and you are never charged twice.",
      );
    }
    if (err.code === "outcome_unknown") {
      keepForRetry(true);
      return say(
        "error",
        "The payment processor did not answer in time, so it is not known yet whether you were charged. " +
          "Press Try again: it asks about this same tip, and you are never charged twice.",
      );
    }
    settle();
    const after = err.retryAfterS || 0;
    switch (err.status) {
      case 401:
        return say("error", "You are no longer logged in: log in again to tip.");
      case 402:
        return say("error", `${sentence(err.message)} You have not been charged.`);
      case 422:
        return say("error", explainRefusal(err));
      case 429:
        return waitFor(after || 60, (left) => `You have reached a limit on tips (${err.message}). You can tip again in ${left}.`);
      case 503:
        if (err.code === "processor_busy") {
          return waitFor(after || 5, (left) => `The payment processor is busy and you have not been charged. Try again in ${left}.`);
        }
        return waitFor(after || 30, (left) => `${sentence(err.message)} Try again in ${left}.`);
      default:
        return say("error", sentence(err.message));
    }
  }

  function explainRefusal(err) {
    const c = currency();
    const parts = Object.entries(err.fields || {}).map(([field, problem]) => {
      if (field === "amount_minor") {
        return problem.includes("younger")
          ? `New accounts may tip at most ${formatMoney(options.max_minor, c)} for now.`
          : `A tip must be from ${formatMoney(options.min_minor, c)} to ${formatMoney(options.max_minor, c)}.`;
      }
      if (field === "stream") return sentence(problem);
      if (field === "message") return `Tip message ${problem}.`;
      return `${sentence(`${field.replaceAll("_", " ")} ${problem}`)}`;
    });
    return `${parts.length ? parts.join(" ") : sentence(err.message)} You have not been charged.`;
  }

  // -- Stripe: the card form (Payment Element) confirms the PaymentIntent ------------------

  async function showCardForm(result, amount) {
    lock(true); // the card form pays this tip: it cannot change under it
    if (!result.publishable_key) {
      settle();
      return say("error", "Card payments are not set up on this server (it has no Stripe publishable key). You have not been charged.");
    }
    say("info", "Loading the card form from Stripe…");
    let Stripe;
    try {
      Stripe = await loadStripe();
    } catch {
      keepForRetry(false); // the same tip again: the same PaymentIntent, once Stripe.js loads
      return say(
        "error",
        "The payment form could not load: Stripe.js, which shows the card form, did not load from js.stripe.com " +
          "(no connection to it, or blocked by a firewall or a browser extension). You have not been charged. " +
          "Press Try again once it can load.",
      );
    }
    const stripe = Stripe(result.publishable_key);
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    const elements = stripe.elements({ clientSecret: result.client_secret, appearance: { theme: dark ? "night" : "stripe" } });
    const element = elements.create("payment");
    payBox.replaceChildren();
    payBox.hidden = false;
    element.mount(payBox);
    confirming = { stripe, elements, amount };
    submit.textContent = `Pay ${amount}`;
    say("info", `Enter your card to pay ${amount}.`);
  }

  async function confirmCard() {
    const { stripe, elements, amount } = confirming;
    submit.disabled = true;
    say("info", "Confirming your payment…");
    const back = new URL(location.href);
    back.search = "";
    let answer;
    try {
      answer = await stripe.confirmPayment({
        elements,
        redirect: "if_required", // cards stay on the page; a bank that needs its own page comes back here
        confirmParams: { return_url: back.href },
      });
    } catch (err) {
      // No answer from Stripe: the card form stays, and paying again confirms the same
      // PaymentIntent, which Stripe never charges twice.
      submit.disabled = false;
      return say("error", `Stripe did not answer (${err.message || err}). Press ${submit.textContent} again: the same payment is confirmed, never a second one.`);
    }
    const { error, paymentIntent } = answer;
    submit.disabled = false;
    if (error) {
      if (error.type === "validation_error") return say("error", sentence(error.message));
      return say("error", `${sentence(error.message)} You have not been charged.`);
    }
    settle();
    if (paymentIntent.status === "succeeded" || paymentIntent.status === "processing") {
      return say("ok", `Thank you! You tipped ${creator} ${amount}; it shows in the chat once Stripe confirms it.`);
    }
    say("error", "The payment was not completed: you have not been charged.");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    if (confirming) await confirmCard();
    else await send();
  });
  /** The viewer changes the tip: what was said about the last one no longer holds. */
  function edited() {
    amountInput.removeAttribute("aria-invalid");
    if (waitUntil <= Date.now() && !attempt?.retry) say("info", "");
    relabel();
  }
  amountInput.addEventListener("input", () => {
    markPreset();
    edited();
  });
  messageInput.addEventListener("input", edited);
  currencySelect.addEventListener("change", () => {
    drawPresets();
    edited();
  });
  drawPresets();
}

/** After Stripe sent the viewer to their bank's page and back: say how it went. */
function cameBackFromStripe(status) {
  const url = new URL(location.href);
  const outcome = url.searchParams.get("redirect_status");
  if (!outcome || !url.searchParams.has("payment_intent")) return;
  for (const name of ["payment_intent", "payment_intent_client_secret", "redirect_status"]) url.searchParams.delete(name);
  history.replaceState(null, "", url);
  status.textContent =
    outcome === "succeeded"
      ? "Thank you! Your tip is paid; it shows in the chat once Stripe confirms it."
      : "Your tip's payment did not go through: you have not been charged.";
  status.hidden = false;
}
