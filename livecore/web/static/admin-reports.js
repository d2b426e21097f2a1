// The review queue: the platform's reports (filtered by state, category, target and age), each
// with its target as it is now (a live stream's picture, title, viewers and recent chat; a
// line and its neighbours) and the account's earlier reports and sanctions, and the actions
// the API says fit it. An action closes every open report on the target; the list is read
// again afterwards.
import { api, el } from "./api.js";
import { $, fail, hooks, say, when } from "./admin-page.js";

export const CATEGORIES = {
  spam: "Spam",
  harassment_or_hate: "Harassment or hate",
  violence: "Violence",
  sexual_content: "Sexual content",
  minor_safety: "Minor safety",
  illegal: "Illegal",
  copyright: "Copyright",
  self_harm: "Self-harm",
  other: "Other",
};
const KINDS = { stream: "Stream", user: "Account", recording: "Recording", line: "Chat line" };
const ACTIONS = {
  dismiss: "Dismiss",
  delete_line: "Delete line",
  end_broadcast: "End broadcast",
  take_down_recording: "Take down recording",
  timeout: "Time out",
  ban: "Ban",
  suspend_account: "Suspend account",
};
// What the status line says once an action is done (`what`: the target in a few words).
const DONE = {
  dismiss: (what) => `Dismissed the report on ${what}.`,
  delete_line: (what) => `Deleted ${what}.`,
  end_broadcast: (what) => `Ended the broadcast of ${what}.`,
  take_down_recording: (what) => `Took down ${what}.`,
  timeout: (what, r) => `Timed out ${named(r, r.subject_id)} (${what}).`,
  ban: (what, r) => `Banned ${named(r, r.subject_id)} from the chat (${what}).`,
  suspend_account: (what, r) => `Suspended ${named(r, r.subject_id)} (${what}).`,
};
// Actions that need a reason written down: they end, remove or suspend something.
const NEEDS_REASON = new Set(["end_broadcast", "take_down_recording", "ban", "suspend_account"]);
const TIMEOUTS = [["600", "10 minutes"], ["3600", "1 hour"], ["86400", "24 hours"], ["604800", "7 days"]];
const SUSPENSIONS = [["", "Until lifted"], ["86400", "1 day"], ["604800", "7 days"], ["2592000", "30 days"]];

const options = (pairs) => pairs.map(([value, text]) => el("option", { value }, text));

/** Fill the filter's category choices (the list is the API's). */
export function setUpReports() {
  const select = $("reports-filter").elements.category;
  select.append(...options(Object.entries(CATEGORIES)));
  $("reports-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    loadReports().catch(fail);
  });
  $("reports-refresh").addEventListener("click", () => loadReports().catch(fail));
}

function query() {
  const form = $("reports-filter").elements;
  const params = new URLSearchParams({ state: form.state.value });
  if (form.category.value) params.set("category", form.category.value);
  if (form.kind.value) params.set("target_kind", form.kind.value);
  const [name, seconds] = form.age.value.split(":");
  if (name) params.set(name, seconds);
  return params;
}

/** "the stream Late show", "a chat line in Late show": what a report is about, in words. */
function about(report) {
  const stream = report.context.stream;
  const name = stream ? stream.title || stream.slug : "";
  switch (report.target_kind) {
    case "stream":
      return name ? `the stream ${name}` : "a stream";
    case "line":
      return name ? `a chat line in ${name}` : "a chat line";
    case "recording":
      return name ? `a recording of ${name}` : "a recording";
    default:
      return named(report, report.subject_id);
  }
}

const lineText = (line) => (line.deleted ? "(deleted)" : line.text);
/** An account by name when the API gave it ("cam"), by number otherwise ("account 4"). */
const named = (report, id) => report.context.names?.[id] ?? `account ${id}`;
const lineItem = (report, line, marked = false) =>
  el("li", { class: marked ? "reported" : "" }, el("strong", {}, named(report, line.user_id)), ": ", lineText(line));

function streamFacts(stream) {
  const name = stream.title || stream.slug;
  const box = el("div", { class: "target" });
  if (stream.thumbnail_url) {
    const thumb = el("img", {
      class: "thumb", alt: `Latest picture of ${name}`, width: 320, height: 180,
      src: `${stream.thumbnail_url}?at=${Date.now()}`,
    });
    thumb.addEventListener("error", () =>
      thumb.replaceWith(el("p", { class: "thumb hint" }, "No picture yet.")), { once: true });
    box.append(thumb);
  }
  const viewers = `${stream.viewers} viewer${stream.viewers === 1 ? "" : "s"}`;
  box.append(
    el("p", { class: "title" }, el("a", { href: `/watch/${encodeURIComponent(stream.slug)}` }, name)),
    el("p", { class: "meta" }, stream.state === "live" ? `Live · ${viewers}` : stream.state),
  );
  return box;
}

function context(report) {
  const c = report.context;
  const parts = [];
  if (c.stream) parts.push(streamFacts(c.stream));
  if (c.recent_chat) {
    parts.push(el("h4", {}, "Recent chat"));
    parts.push(c.recent_chat.length
      ? el("ul", { class: "lines", "aria-label": "Recent chat" }, ...c.recent_chat.map((l) => lineItem(report, l)))
      : el("p", { class: "hint" }, "No chat lines."));
  }
  if (report.target_kind === "line") {
    parts.push(el("h4", {}, "The line and its neighbours"));
    const lines = [...(c.neighbours || []), ...(c.line ? [c.line] : [])].sort((a, b) => a.id - b.id);
    parts.push(el("ul", { class: "lines", "aria-label": "The line and its neighbours" },
      ...lines.map((l) => lineItem(report, l, c.line && l.id === c.line.id))));
    if (c.line) parts.push(el("p", {}, el("strong", {}, "Reported line: "), `${named(report, c.line.user_id)}: `, lineText(c.line)));
  }
  if (report.subject_id !== null) {
    const prior = c.prior_reports || [];
    const actions = c.actions_against_user || [];
    parts.push(el("h4", {}, `History of ${named(report, report.subject_id)} (account ${report.subject_id})`));
    parts.push(el("p", {}, prior.length
      ? `Other reports: ${prior.map((p) => `#${p.id} ${KINDS[p.target_kind].toLowerCase()}, ${CATEGORIES[p.category] ?? p.category}, ${p.state}${p.outcome ? ` (${p.outcome})` : ""}`).join("; ")}.`
      : "No other reports."));
    parts.push(el("p", {}, actions.length ? `Actions taken: ${actions.join(", ")}.` : "No actions taken against this account."));
  }
  return parts;
}

function actionForm(report) {
  const allowed = report.actions.filter((a) =>
    a !== "end_broadcast" || report.context.stream?.state === "live");
  const fields = [el("label", {}, "Reason", el("input", { name: "reason", maxLength: 500, autocomplete: "off" }))];
  if (allowed.includes("timeout")) {
    fields.push(el("label", {}, "Time out for", el("select", { name: "timeout" }, ...options(TIMEOUTS))));
  }
  if (allowed.includes("suspend_account")) {
    fields.push(el("label", {}, "Suspend for", el("select", { name: "suspend" }, ...options(SUSPENSIONS))));
  }
  if (report.target_kind === "user" && (allowed.includes("timeout") || allowed.includes("ban"))) {
    fields.push(el("label", {}, "In the chat of stream",
      el("input", { name: "stream", maxLength: 64, autocomplete: "off", placeholder: "address name" })));
  }
  const form = el("form", { class: "report-actions", "aria-label": `Act on report ${report.id}` }, ...fields);
  const buttons = el("div", { class: "actions" }, ...allowed.map((action) =>
    el("button", {
      type: "button", class: action === "dismiss" ? "quiet" : "live",
      onclick: (event) => act(report, action, form, event.currentTarget),
    }, ACTIONS[action])));
  form.append(buttons);
  form.addEventListener("submit", (event) => event.preventDefault());
  return form;
}

async function act(report, action, form, button) {
  const fields = form.elements;
  const reason = fields.reason.value.trim();
  if (NEEDS_REASON.has(action) && !reason) {
    fail(new Error(`Say why: "${ACTIONS[action]}" on report ${report.id} needs a reason.`));
    fields.reason.focus();
    return;
  }
  const body = { action, reason };
  if (action === "timeout") body.seconds = Number(fields.timeout.value);
  if (action === "suspend_account" && fields.suspend.value) body.seconds = Number(fields.suspend.value);
  if (report.target_kind === "user" && (action === "timeout" || action === "ban")) {
    if (!fields.stream.value.trim()) {
      fail(new Error("Say in which stream's chat (its address name)."));
      fields.stream.focus();
      return;
    }
    body.stream = fields.stream.value.trim();
  }
  button.disabled = true;
  try {
    const answer = await api("POST", `/api/v1/admin/reports/${report.id}/action`, body);
    const closed = answer.closed.length;
    say(`${DONE[action](about(report), report)} Closed ${closed} report${closed === 1 ? "" : "s"}.`);
    hooks.changed();
    await loadReports();
    // The card and its button are gone: keyboard focus goes back to the queue's heading.
    $("reports-heading").focus();
  } catch (err) {
    button.disabled = false;
    fail(err);
  }
}

function card(report) {
  const heading = `Report ${report.id}: ${about(report)}`;
  const id = `report-${report.id}`;
  const who = report.source === "screening" ? `Flagged by screening (score ${report.score ?? "–"})` : "Filed by a user";
  const closed = report.state === "open" ? "" : ` · ${report.state}${report.outcome ? ` (${report.outcome})` : ""} ${when(report.closed_at)}`;
  return el(
    "li", { "aria-labelledby": id },
    el("h3", { id }, heading),
    el("p", { class: "meta" },
      `${KINDS[report.target_kind]} · ${CATEGORIES[report.category] ?? report.category} · ${who} ${when(report.created_at)}${closed}`),
    ...(report.note ? [el("blockquote", {}, report.note)] : []),
    ...context(report),
    ...(report.state === "open" ? [actionForm(report)] : []),
  );
}

/** Look again unless the admin is at work on a card (focus in it, or a reason typed), which
 * a redraw would lose. */
export function refreshReportsQuietly() {
  const list = $("reports");
  const busy = list.contains(document.activeElement) ||
    [...list.querySelectorAll("input")].some((input) => input.value.trim() !== "");
  return busy ? Promise.resolve() : loadReports();
}

export async function loadReports() {
  const { reports } = await api("GET", `/api/v1/admin/reports?${query()}`);
  $("reports").replaceChildren(...reports.map(card));
  $("no-reports").hidden = reports.length > 0;
}
