// What the admin console's sections share: the status and error lines, times and money in words.
import { show } from "./api.js";

export const $ = (id) => document.getElementById(id);

/** Called after every action the console takes: admin.js reloads the audit log, which has a
 * new entry. */
export const hooks = { changed: () => {} };

export function fail(err) {
  show($("error"), err.explain ? err.explain() : String(err.message || err));
}

export function say(text) {
  $("error").hidden = true;
  $("status").textContent = text;
}

export const when = (iso) =>
  iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "";

export function digits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions()
      .maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** "$4.00" from 400 and "usd". */
export function money(minor, currency) {
  const code = currency.toUpperCase();
  const value = minor / 10 ** digits(code);
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: code }).format(value);
  } catch {
    return `${value.toFixed(2)} ${code}`;
  }
}

/** An ISO time with its offset from a datetime-local input's value (the browser's zone). */
export const isoFromLocal = (value) => (value ? new Date(value).toISOString() : "");

/** Label each cell of a stacked table with its column's heading (narrow screens show it),
 * and show the table only when it has rows, its "none" note otherwise. */
export function filled(tbodyId, noteId, count) {
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
