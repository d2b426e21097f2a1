// Payouts to settle (mark paid, or failed with a reason) and the platform's revenue per day,
// drawn with Chart.js (window.Chart, a classic script from npm) beside the same figures as a
// table; the canvas has role="img" and an aria-label that sums it up.
import { api, el, show } from "./api.js";
import { $, digits, fail, filled, hooks, money, say, when } from "./admin-page.js";
import { open } from "./admin-users.js";

const DAYS = 30;
const revenue = { days: [], from: "", to: "", totals: {} };
let chart = null;

async function settle(payout, verb, reasonInput) {
  const body = verb === "failed" ? { reason: reasonInput.value.trim() } : undefined;
  if (verb === "failed" && !body.reason) {
    fail(new Error(`Say why payout #${payout.id} failed.`));
    reasonInput.focus();
    return;
  }
  try {
    await api("POST", `/api/v1/admin/payouts/${payout.id}/${verb}`, body);
    say(`Payout #${payout.id} marked ${verb}.`);
    hooks.changed();
    await loadPayouts();
  } catch (err) {
    fail(err);
  }
}

export async function loadPayouts() {
  const { payouts } = await api("GET", "/api/v1/admin/payouts?status=in_transit");
  // The creators' names, one lookup per creator (a few wait at a time).
  const ids = [...new Set(payouts.map((p) => p.creator_id))];
  const found = await Promise.all(
    ids.map((id) => api("GET", `/api/v1/admin/users/${id}`).then(({ user }) => user, () => null)),
  );
  const names = new Map(ids.map((id, i) => [id, found[i]?.display_name || `#${id}`]));
  $("payouts").replaceChildren(
    ...payouts.map((p) => {
      const reason = el("input", { maxLength: 500, autocomplete: "off" });
      return el(
        "tr", {},
        el("th", { scope: "row" }, `#${p.id}`),
        el("td", {}, el("button", { type: "button", class: "quiet small", onclick: () => open(p.creator_id).catch(fail) },
          `Manage ${names.get(p.creator_id)}`)),
        el("td", {}, money(p.amount_minor, p.currency)),
        el("td", {}, p.rail),
        el("td", {}, when(p.created_at)),
        el("td", { class: "row-actions" },
          el("button", { type: "button", class: "small", onclick: () => settle(p, "paid") }, "Mark paid"),
          el("label", { class: "failure" }, "Why it failed", reason),
          el("button", { type: "button", class: "quiet small", onclick: () => settle(p, "failed", reason) }, "Mark failed")),
      );
    }),
  );
  filled("payouts", "no-payouts", payouts.length);
}

const isoDay = (date) => date.toISOString().slice(0, 10);
const dayLabel = (iso) =>
  new Date(`${iso}T00:00:00Z`).toLocaleDateString(undefined, { day: "numeric", month: "short", timeZone: "UTC" });

export async function loadRevenue() {
  const to = new Date();
  const from = new Date(to.getTime() - (DAYS - 1) * 86400_000);
  const query = `from=${isoDay(from)}&to=${isoDay(to)}`;
  const answer = await api("GET", `/api/v1/admin/revenue?${query}`);
  Object.assign(revenue, answer);
  $("revenue-csv").href = `/api/v1/admin/revenue?${query}&format=csv`;
  const currencies = [...new Set([...Object.keys(answer.totals), ...answer.days.map((d) => d.currency)])].sort();
  if (!currencies.length) currencies.push("usd");
  const select = $("revenue-currency");
  const keep = select.value;
  select.replaceChildren(...currencies.map((c) => el("option", { value: c }, c.toUpperCase())));
  select.value = currencies.includes(keep) ? keep : currencies[0];
  select.onchange = drawRevenue;
  drawRevenue();
}

function drawRevenue() {
  const currency = $("revenue-currency").value;
  const days = [];
  for (let t = Date.parse(`${revenue.from}T00:00:00Z`); t <= Date.parse(`${revenue.to}T00:00:00Z`); t += 86400_000) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  const byDay = new Map(revenue.days.filter((d) => d.currency === currency).map((d) => [d.day, d]));
  const net = days.map((d) => byDay.get(d)?.net ?? 0);
  const gross = days.map((d) => byDay.get(d)?.gross_volume ?? 0);
  const total = revenue.totals[currency] || {};
  $("revenue-totals").textContent =
    `${money(total.net ?? 0, currency)} net from ${money(total.gross_volume ?? 0, currency)} charged, last ${DAYS} days`;
  const summary =
    `Platform revenue per day in ${currency.toUpperCase()}, ${dayLabel(days[0])} to ${dayLabel(days.at(-1))}: ` +
    `${money(total.net ?? 0, currency)} net in all.`;
  const figure = $("revenue");
  const canvas = figure.querySelector("canvas");
  canvas.setAttribute("aria-label", summary);
  const any = net.some((v) => v !== 0) || gross.some((v) => v !== 0);
  show(figure.querySelector(".chart-none"), any ? "" : `No revenue in ${currency.toUpperCase()} in the last ${DAYS} days.`);
  figure.querySelector(".chart-box").hidden = !any;
  figure.querySelector("details").hidden = !any;
  const rows = days.map((d, i) => [d, gross[i], net[i]]).filter(([, g, n]) => g || n);
  figure.querySelector("table").replaceChildren(
    el("caption", { class: "visually-hidden" }, "Platform revenue per day"),
    el("thead", {}, el("tr", {}, ...["Day", "Charged", "Net"].map((c) => el("th", { scope: "col" }, c)))),
    el("tbody", {}, ...rows.map(([d, g, n]) =>
      el("tr", {}, el("th", { scope: "row" }, dayLabel(d)), el("td", {}, money(g, currency)), el("td", {}, money(n, currency))))),
  );
  chart?.destroy();
  chart = null;
  if (!any) return;
  if (typeof window.Chart !== "function") {
    figure.querySelector(".chart-box").replaceChildren(
      el("p", { class: "hint" }, "Charts are unavailable: Chart.js is not installed on this server. The table below has the figures."));
    return;
  }
  const css = getComputedStyle(document.documentElement);
  const text = css.getPropertyValue("--muted").trim() || "#6b6b76";
  const unit = 10 ** digits(currency.toUpperCase());
  chart = new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: days.map(dayLabel),
      datasets: [{ label: "Net revenue", data: net.map((v) => v / unit),
        backgroundColor: css.getPropertyValue("--accent").trim() || "#5b5bd6", maxBarThickness: 48 }],
    },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, color: text,
      scales: {
        x: { ticks: { color: text, maxRotation: 0, autoSkip: true }, grid: { display: false } },
        y: { beginAtZero: true, ticks: { color: text, callback: (v) => money(Math.round(v * unit), currency) },
          grid: { color: css.getPropertyValue("--line").trim() || "#e1e1e6" } },
      },
      plugins: { legend: { display: false },
        tooltip: { callbacks: { label: (ctx) => `Net: ${money(Math.round(ctx.parsed.y * unit), currency)}` } } },
    },
  });
}
