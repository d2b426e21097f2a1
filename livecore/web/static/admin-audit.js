// The audit log: filter by actor, action, target and time, page back, export what the filter
// shows as CSV (the link follows the filter).
import { api, el } from "./api.js";
import { $, fail, filled, isoFromLocal, when } from "./admin-page.js";

let filter = new URLSearchParams();
let before = null;

function readFilter() {
  const f = $("audit-filter").elements;
  const params = new URLSearchParams();
  for (const name of ["actor", "action", "target"]) {
    const value = f[name].value.trim();
    if (value) params.set(name, value);
  }
  for (const name of ["from", "to"]) {
    const value = isoFromLocal(f[name].value);
    if (value) params.set(name, value);
  }
  return params;
}

function details(entry) {
  // Empty values (no end to a suspension, no streams ended) say nothing: left out.
  const parts = Object.entries(entry.details)
    .filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length))
    .map(([k, v]) => `${k.replaceAll("_", " ")}: ${Array.isArray(v) ? v.join(", ") : v}`);
  return parts.join("; ");
}

function row(e) {
  const target = e.user_name ? `${e.target_type} ${e.target_id} (${e.user_name})` : `${e.target_type} ${e.target_id}`;
  return el(
    "tr", {},
    el("td", {}, el("time", { dateTime: e.at }, when(e.at))),
    el("td", {}, e.actor ? e.actor.display_name || `#${e.actor.id}` : "system"),
    el("th", { scope: "row" }, e.action),
    el("td", {}, target),
    el("td", { class: "audit-details" }, details(e)),
  );
}

export async function loadAudit(more = false) {
  const params = new URLSearchParams(filter);
  if (more && before !== null) params.set("before", String(before));
  const answer = await api("GET", `/api/v1/admin/audit?${params}`);
  const rows = answer.entries.map(row);
  if (more) $("audit").append(...rows);
  else $("audit").replaceChildren(...rows);
  before = answer.next_before;
  $("audit-older").hidden = before === null;
  filled("audit", "no-audit", $("audit").rows.length);
  const csv = new URLSearchParams(filter);
  csv.set("format", "csv");
  $("audit-csv").href = `/api/v1/admin/audit?${csv}`;
}

export function setUpAudit() {
  $("audit-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    filter = readFilter();
    loadAudit().catch(fail);
  });
  $("audit-older").addEventListener("click", () => loadAudit(true).catch(fail));
}
