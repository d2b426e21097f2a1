// The creator's Money page (/studio/money): balances and payouts, tips with the fallback lane's
// invoices, statements to download, subscription tiers, and charts of earnings and viewers.
// Every chart is a canvas with role="img" and an aria-label that sums it up, followed by the
// same figures as a table. Chart.js (window.Chart) comes from npm as a classic script.
import { api, el, show } from "./api.js";
import { me } from "./header.js";

const $ = (id) => document.getElementById(id);
const DAYS = 30;
const BROADCASTS = 20;
const TIPS_LISTED = 200; // as many as GET /api/v1/me/tips answers with
const STATUS_WORDS = {
  pending: "Pending", succeeded: "Paid", failed: "Failed", refunded: "Refunded",
  disputed: "Disputed", in_transit: "In transit", paid: "Paid",
};
const LANES = { test: "Test provider", stripe: "Card", manual: "Fallback (invoice)" };

const charts = {}; // id -> Chart, replaced on every render
const data = { summary: {}, days: [], broadcasts: [] };

// -- money in words ----------------------------------------------------------------------------

function digits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions()
      .maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** "$4.00" from 400 and "usd". */
function money(minor, currency) {
  const code = currency.toUpperCase();
  const value = minor / 10 ** digits(code);
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: code }).format(value);
  } catch {
    return `${value.toFixed(2)} ${code}`;
  }
}

/** 499 from "4.99" in a currency with 2 decimals; NaN when it is no amount. */
function toMinor(text, currency) {
  const clean = text.trim().replace(",", ".");
  if (!/^[0-9]+(\.[0-9]+)?$/.test(clean)) return NaN;
  const [whole, frac = ""] = clean.split(".");
  const n = digits(currency.toUpperCase());
  if (frac.length > n) return NaN;
  return Number(whole) * 10 ** n + Number(frac.padEnd(n, "0") || 0);
}

const when = (iso) =>
  new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
const dayLabel = (iso) =>
  new Date(`${iso}T00:00:00Z`).toLocaleDateString(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
const broadcastLabel = (b) =>
  `${new Date(b.started_at).toLocaleDateString(undefined, { day: "numeric", month: "short" })} · ${b.stream.title || b.stream.slug}`;

/** An axis label: a broadcast's label cut short (the table beside the chart has it whole). */
const short = (label) => (label.length > 24 ? `${label.slice(0, 23)}…` : label);

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

// -- page state ---------------------------------------------------------------------------------

function fail(err) {
  show($("error"), err.explain ? err.explain() : String(err.message || err));
}

function say(text) {
  $("error").hidden = true;
  $("status").textContent = text;
}

/** Show a table only when it has rows, and its "none" note otherwise. Each cell is labelled
 * with its column's heading, which narrow screens show beside it (rows stack as cards). */
function emptied(tbodyId, noteId, count) {
  const body = $(tbodyId);
  const headings = [...body.closest("table").querySelectorAll("thead th")].map((th) =>
    th.querySelector(".visually-hidden") ? "" : th.textContent.trim(),
  );
  for (const row of body.rows) {
    [...row.cells].forEach((c, i) => c.setAttribute("data-label", headings[i] ?? ""));
  }
  body.closest(".scroll").hidden = count === 0;
  $(noteId).hidden = count > 0;
}

function cell(text, props = {}) {
  return el("td", props, text);
}

// -- balances and payouts -----------------------------------------------------------------------

function renderBalances() {
  const rows = Object.entries(data.summary).sort(([a], [b]) => a.localeCompare(b));
  $("balances").replaceChildren(
    ...rows.map(([currency, s]) => {
      const request =
        s.available_minor > 0
          ? el(
              "button",
              { type: "button", onclick: () => requestPayout(currency, request) },
              `Request payout in ${currency.toUpperCase()}`,
            )
          : el("span", { class: "hint" }, s.debt_minor > 0 ? "No payout while you owe a debt" : s.held_minor > 0 ? "Nothing available yet" : "Nothing to pay out");
      return el(
        "tr",
        {},
        el("th", { scope: "row" }, currency.toUpperCase()),
        cell(money(s.owed_minor, currency)),
        cell(money(s.held_minor, currency)),
        cell(money(s.available_minor, currency), { class: "strong" }),
        cell(money(s.debt_minor, currency)),
        el("td", {}, request),
      );
    }),
  );
  emptied("balances", "no-balances", rows.length);
}

async function requestPayout(currency, button) {
  button.disabled = true;
  try {
    const { payout } = await api("POST", "/api/v1/me/payouts", { currency });
    say(`Payout of ${money(payout.amount_minor, payout.currency)} requested: ${STATUS_WORDS[payout.status] || payout.status}.`);
    await loadPayouts();
  } catch (err) {
    button.disabled = false;
    fail(err);
  }
}

async function loadPayouts() {
  const { payouts, summary } = await api("GET", "/api/v1/me/payouts");
  data.summary = summary;
  renderBalances();
  $("payouts").replaceChildren(
    ...payouts.map((p) =>
      el(
        "tr",
        {},
        cell(when(p.created_at)),
        cell(money(p.amount_minor, p.currency)),
        cell(STATUS_WORDS[p.status] || p.status),
        cell(p.rail === "stripe" ? "Stripe transfer" : "Bank transfer"),
        cell(p.failure || ""),
      ),
    ),
  );
  emptied("payouts", "no-payouts", payouts.length);
}

// -- tips ---------------------------------------------------------------------------------------

async function loadTips() {
  const form = $("tip-filter");
  const query = new URLSearchParams();
  if (form.status.value) query.set("status", form.status.value);
  if (form.fallback.checked) query.set("lane", "fallback");
  const { tips } = await api("GET", `/api/v1/me/tips${query.size ? `?${query}` : ""}`);
  $("tips").replaceChildren(...tips.map(tipRow));
  emptied("tips", "no-tips", tips.length);
  // The API answers with the latest TIPS_LISTED; the statements have every one.
  show($("tips-capped"), tips.length >= TIPS_LISTED ? `The latest ${TIPS_LISTED} are shown: download a statement for all of them.` : "");
}

function tipRow(tip) {
  const amount = money(tip.amount_minor, tip.currency);
  const actions = el("td", { class: "row-actions" });
  if (tip.provider === "manual" && tip.status === "pending") {
    const label = `tip #${tip.id} of ${amount}`;
    actions.append(
      el("button", { type: "button", "aria-label": `Mark paid: ${label}`, onclick: (e) => settle(tip, true, e.target) }, "Mark paid"),
      el("button", { type: "button", class: "quiet", "aria-label": `Give up: ${label}`, onclick: (e) => settle(tip, false, e.target) }, "Give up"),
    );
  }
  const paid = ["succeeded", "refunded", "disputed"].includes(tip.status);
  const status = STATUS_WORDS[tip.status] || tip.status;
  return el(
    "tr",
    { "data-tip": String(tip.id) },
    cell(when(tip.created_at)),
    cell(amount),
    cell(paid ? money(tip.amount_minor - tip.platform_fee_minor, tip.currency) : "—"),
    cell(tip.message, { class: "message" }),
    cell(tip.failure ? `${status}: ${tip.failure}` : status),
    cell(LANES[tip.provider] || tip.provider),
    actions,
  );
}

/** Say how many fallback-lane invoices wait to be settled, whatever the filter shows. */
async function loadInvoices() {
  const { tips } = await api("GET", "/api/v1/me/tips?status=pending&lane=fallback");
  const n = tips.length;
  $("invoices-count").textContent =
    n === 1 ? "1 fallback-lane invoice waits for you." : `${n} fallback-lane invoices wait for you.`;
  $("invoices-waiting").hidden = n === 0;
}

async function showInvoices() {
  const form = $("tip-filter");
  form.status.value = "pending";
  form.fallback.checked = true;
  await loadTips();
  $("tips-heading").scrollIntoView();
  form.status.focus();
}

async function settle(tip, paid, button) {
  button.disabled = true;
  try {
    await api("POST", `/api/v1/me/tips/${tip.id}/${paid ? "paid" : "unpaid"}`);
    say(paid ? `Tip #${tip.id} marked paid.` : `Gave up on tip #${tip.id}.`);
    await Promise.all([loadTips(), loadInvoices(), loadPayouts(), loadCharts()]);
  } catch (err) {
    button.disabled = false;
    fail(err);
  }
}

// -- statements ---------------------------------------------------------------------------------

function statementLinks() {
  const form = $("statement-form");
  const from = form.from.value;
  const to = form.to.value;
  const days = (Date.parse(to) - Date.parse(from)) / 86400_000 + 1;
  // A link to a period the server would refuse would download its error as the file.
  const problem = !from || !to ? "Choose both days." : days < 1 ? "From must not be after To."
    : days > 366 ? "A statement spans at most 366 days." : "";
  show($("statement-problem"), problem);
  for (const kind of ["csv", "json"]) {
    const link = $(`statement-${kind}`);
    if (problem) {
      link.removeAttribute("href");
      link.setAttribute("aria-disabled", "true");
      continue;
    }
    link.removeAttribute("aria-disabled");
    const query = new URLSearchParams({ from, to, format: kind });
    link.href = `/api/v1/me/statement?${query}`;
    link.download = `statement-${from}-${to}.${kind}`;
  }
}

// -- tiers and subscribers ----------------------------------------------------------------------

async function loadTiers() {
  const { subscribers, tiers } = await api("GET", "/api/v1/me/subscribers");
  $("subscriber-count").textContent = String(subscribers);
  $("subscriber-word").textContent = subscribers === 1 ? "subscriber" : "subscribers";
  $("tiers").replaceChildren(
    ...tiers.map((t) => {
      const retire = el(
        "button",
        { type: "button", class: "quiet", "aria-label": `Retire tier ${t.name}`, onclick: () => retireTier(t, retire) },
        "Retire",
      );
      const name = el("th", { scope: "row" }, t.name);
      const rename = el(
        "button",
        { type: "button", class: "quiet", "aria-label": `Rename tier ${t.name}`, onclick: () => renameForm(t, name) },
        "Rename",
      );
      return el(
        "tr",
        {},
        name,
        cell(money(t.price_minor, t.currency)),
        cell(String(t.subscribers)),
        cell(t.active ? "Yes" : "Retired"),
        el("td", { class: "row-actions" }, rename, t.active ? retire : ""),
      );
    }),
  );
  emptied("tiers", "no-tiers", tiers.length);
}

async function createTier(event) {
  event.preventDefault();
  const form = event.target;
  const currency = form.currency.value.trim().toLowerCase();
  const price = toMinor(form.price.value, currency);
  if (!Number.isFinite(price) || price <= 0) {
    show($("error"), "Price must be an amount such as 4.99.");
    form.price.focus();
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const { tier } = await api("POST", "/api/v1/me/tiers", {
      name: form.name.value.trim(), price_minor: price, currency,
    });
    say(`Tier "${tier.name}" created: ${money(tier.price_minor, tier.currency)} a month.`);
    form.name.value = "";
    form.price.value = "";
    await loadTiers();
  } catch (err) {
    fail(err);
  } finally {
    button.disabled = false;
  }
}

/** Swap a tier's name for a small form that renames it (its price never changes). */
function renameForm(tier, nameCell) {
  const input = el("input", { name: "name", required: true, maxLength: 60, value: tier.name, autocomplete: "off" });
  const form = el(
    "form",
    { class: "rename" },
    el("label", {}, `New name for tier ${tier.name}`, input),
    el("button", { type: "submit" }, "Save"),
    el("button", { type: "button", class: "quiet", onclick: () => loadTiers().catch(fail) }, "Cancel"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const { tier: renamed } = await api("PATCH", `/api/v1/me/tiers/${tier.tier_id}`, { name: input.value.trim() });
      say(`Tier "${tier.name}" is now "${renamed.name}".`);
      await loadTiers();
    } catch (err) {
      fail(err);
      input.focus();
    }
  });
  nameCell.replaceChildren(form);
  input.select();
}

async function retireTier(tier, button) {
  button.disabled = true;
  try {
    await api("DELETE", `/api/v1/me/tiers/${tier.tier_id}`);
    say(`Tier "${tier.name}" is no longer offered; its subscriptions continue.`);
    await loadTiers();
  } catch (err) {
    button.disabled = false;
    fail(err);
  }
}

// -- charts -------------------------------------------------------------------------------------

async function loadCharts() {
  const to = new Date();
  const from = new Date(to.getTime() - (DAYS - 1) * 86400_000);
  const [statement, { broadcasts }] = await Promise.all([
    api("GET", `/api/v1/me/statement?from=${isoDay(from)}&to=${isoDay(to)}`),
    api("GET", `/api/v1/me/broadcasts?limit=${BROADCASTS}`),
  ]);
  data.days = statement.days;
  data.from = statement.from;
  data.to = statement.to;
  data.broadcasts = broadcasts.slice().reverse(); // oldest first, left to right
  const currencies = new Set([
    ...Object.keys(data.summary),
    ...data.days.map((d) => d.currency),
    ...data.broadcasts.flatMap((b) => Object.keys(b.tips)),
  ]);
  const select = $("chart-currency");
  const keep = select.value;
  const list = [...currencies].sort();
  if (!list.length) list.push("usd");
  select.replaceChildren(...list.map((c) => el("option", { value: c }, c.toUpperCase())));
  select.value = list.includes(keep) ? keep : list[0];
  renderCharts();
}

function renderCharts() {
  const currency = $("chart-currency").value;
  perDay(currency);
  perBroadcast(currency);
  viewers();
}

function themed() {
  const css = getComputedStyle(document.documentElement);
  return {
    text: css.getPropertyValue("--muted").trim() || "#6b6b76",
    grid: css.getPropertyValue("--line").trim() || "#e1e1e6",
    accent: css.getPropertyValue("--accent").trim() || "#5b5bd6",
  };
}

/** Draw (or redraw) a chart in `figure`, its canvas summed up by `summary`, and its table;
 * with no `labels` at all, the figure says `summary` in words instead. */
function draw(figureId, summary, labels, series, columns, rows, format) {
  const figure = $(figureId);
  const canvas = figure.querySelector("canvas");
  canvas.setAttribute("aria-label", summary);
  show(figure.querySelector(".chart-none"), labels.length ? "" : summary);
  figure.querySelector(".chart-box").hidden = !labels.length;
  figure.querySelector("details").hidden = !labels.length;
  figure.querySelector("table").replaceChildren(
    el("caption", { class: "visually-hidden" }, figure.querySelector("figcaption").textContent),
    el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col" }, c)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, el("th", { scope: "row" }, r[0]), ...r.slice(1).map((v) => cell(v))))),
  );
  charts[figureId]?.destroy();
  delete charts[figureId];
  if (typeof window.Chart !== "function") {
    figure.querySelector(".chart-box").replaceChildren(
      el("p", { class: "hint" }, "Charts are unavailable: Chart.js is not installed on this server. The table below has the figures."),
    );
    return;
  }
  const theme = themed();
  const palette = [theme.accent, "#2f9e6b", "#d08a1a"];
  charts[figureId] = new window.Chart(canvas, {
    type: "bar",
    data: {
      labels,
      datasets: series.map((s, i) => ({ ...s, backgroundColor: palette[i % palette.length], maxBarThickness: 48 })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      color: theme.text,
      scales: {
        x: { stacked: series.some((s) => s.stack), ticks: { color: theme.text, maxRotation: 0, autoSkip: true }, grid: { display: false } },
        y: { stacked: series.some((s) => s.stack), beginAtZero: true, ticks: { color: theme.text, callback: (v) => format(v), precision: 0 }, grid: { color: theme.grid } },
      },
      plugins: {
        legend: { display: series.length > 1, labels: { color: theme.text } },
        tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${format(ctx.parsed.y)}` } },
      },
    },
  });
}

function perDay(currency) {
  // Every day of the period, so quiet days show as gaps rather than disappearing.
  const days = [];
  for (let t = Date.parse(`${data.from}T00:00:00Z`); t <= Date.parse(`${data.to}T00:00:00Z`); t += 86400_000) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  const byDay = new Map(data.days.filter((d) => d.currency === currency).map((d) => [d.day, d]));
  const tips = days.map((d) => byDay.get(d)?.tips ?? 0);
  const subs = days.map((d) => byDay.get(d)?.subscriptions ?? 0);
  const unit = digits(currency.toUpperCase());
  const fmt = (v) => money(Math.round(v * 10 ** unit), currency);
  const total = tips.reduce((a, b) => a + b, 0) + subs.reduce((a, b) => a + b, 0);
  let best = -1;
  days.forEach((d, i) => {
    if (tips[i] + subs[i] > 0 && (best < 0 || tips[i] + subs[i] > tips[best] + subs[best])) best = i;
  });
  const summary =
    `Earnings per day in ${currency.toUpperCase()}, ${dayLabel(days[0])} to ${dayLabel(days.at(-1))}: ` +
    `${money(total, currency)} in all (tips ${money(tips.reduce((a, b) => a + b, 0), currency)}, ` +
    `subscriptions ${money(subs.reduce((a, b) => a + b, 0), currency)})` +
    (best >= 0 ? `; best day ${dayLabel(days[best])} with ${money(tips[best] + subs[best], currency)}.` : ".");
  const rows = days
    .map((d, i) => [dayLabel(d), money(tips[i], currency), money(subs[i], currency), money(tips[i] + subs[i], currency)])
    .filter((_, i) => tips[i] || subs[i]);
  draw(
    "per-day", summary, days.map(dayLabel),
    [
      { label: "Tips", data: tips.map((v) => v / 10 ** unit), stack: "earned" },
      { label: "Subscriptions", data: subs.map((v) => v / 10 ** unit), stack: "earned" },
    ],
    ["Day", "Tips", "Subscriptions", "Total"], rows, fmt,
  );
  $("per-day").dataset.total = String(total);
}

function perBroadcast(currency) {
  const list = data.broadcasts;
  const unit = digits(currency.toUpperCase());
  const share = list.map((b) => b.tips[currency]?.share_minor ?? 0);
  const total = share.reduce((a, b) => a + b, 0);
  const top = share.indexOf(Math.max(...share, 0));
  const summary = list.length
    ? `Your share of tips in ${currency.toUpperCase()} over your last ${list.length} broadcasts: ${money(total, currency)} in all` +
      (total > 0 ? `; most during ${broadcastLabel(list[top])} with ${money(share[top], currency)}.` : ".")
    : "No broadcasts yet.";
  const rows = list.map((b, i) => [
    broadcastLabel(b), String(b.tips[currency]?.count ?? 0),
    money(b.tips[currency]?.amount_minor ?? 0, currency), money(share[i], currency),
  ]);
  draw(
    "per-broadcast", summary, list.map((b) => short(broadcastLabel(b))),
    [{ label: "Your share of tips", data: share.map((v) => v / 10 ** unit) }],
    ["Broadcast", "Tips", "Viewers paid", "Your share"], rows.reverse(),
    (v) => money(Math.round(v * 10 ** unit), currency),
  );
  $("per-broadcast").dataset.total = String(total);
}

function viewers() {
  const list = data.broadcasts;
  const peak = list.map((b) => b.peak_viewers);
  const unique = list.map((b) => b.unique_viewers);
  const top = peak.indexOf(Math.max(...peak, 0));
  const summary = list.length
    ? `Viewers over your last ${list.length} broadcasts: peak at once up to ${peak[top]} (${broadcastLabel(list[top])}); ` +
      `${unique.reduce((a, b) => a + b, 0)} unique viewers in all.`
    : "No broadcasts yet.";
  const rows = list.map((b) => [broadcastLabel(b), String(b.peak_viewers), String(b.unique_viewers)]);
  draw(
    "viewers", summary, list.map((b) => short(broadcastLabel(b))),
    [
      { label: "Peak viewers", data: peak },
      { label: "Unique viewers", data: unique },
    ],
    ["Broadcast", "Peak", "Unique"], rows.reverse(), (v) => String(v),
  );
}

// -- start ---------------------------------------------------------------------------------------

async function loadAll() {
  const [{ test_mode: testMode }] = await Promise.all([
    api("GET", "/api/v1/me/earnings"), loadPayouts(), loadTips(), loadInvoices(), loadTiers(),
  ]);
  $("test-mode").hidden = !testMode;
  await loadCharts(); // after the balances: their currencies are offered too
}

async function start() {
  const user = await me();
  if (!user) {
    $("signed-out").hidden = false;
    return;
  }
  if (!["creator", "admin"].includes(user.role)) {
    $("not-creator").hidden = false;
    return;
  }
  const today = new Date();
  const form = $("statement-form");
  form.to.value = isoDay(today);
  form.from.value = isoDay(new Date(today.getTime() - (DAYS - 1) * 86400_000));
  form.addEventListener("input", statementLinks);
  form.addEventListener("submit", (e) => e.preventDefault());
  statementLinks();
  $("tip-filter").addEventListener("change", () => loadTips().catch(fail));
  $("tip-filter").addEventListener("submit", (e) => e.preventDefault());
  $("tier-form").addEventListener("submit", createTier);
  $("show-invoices").addEventListener("click", () => showInvoices().catch(fail));
  $("chart-currency").addEventListener("change", renderCharts);
  // The charts take their colours from the page's: redrawn when the colour scheme changes.
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", renderCharts);
  $("refresh").addEventListener("click", async () => {
    say("Refreshing…");
    try {
      await loadAll();
      say("Up to date.");
    } catch (err) {
      fail(err);
    }
  });
  $("content").hidden = false;
  $("refresh").hidden = false;
  await loadAll();
  document.body.dataset.ready = "true"; // for tests: everything is drawn
}

start().catch(fail);
