// The studio's moderation page for one stream (?stream=slug): the reports queue (resolve,
// dismiss), bans and timeouts in force (lift), moderators (add by name or e-mail, remove),
// banned terms, and the audit of actions on the stream. The owner and admins see it all;
// a moderator sees what moderators may do (no moderator changes, no audit).
import { api, el, show } from "./api.js";
import { me, withNext } from "./header.js";

const $ = (id) => document.getElementById(id);
const ui = {
  error: $("error"),
  status: $("status"),
  name: $("stream-name"),
  signedOut: $("signed-out"),
  pick: $("pick"),
  select: $("stream-select"),
  tools: $("tools"),
  reports: $("reports"),
  noReports: $("no-reports"),
  tabs: [...document.querySelectorAll(".tabs button")],
  bans: $("bans"),
  noBans: $("no-bans"),
  moderators: $("moderators"),
  noModerators: $("no-moderators"),
  addModerator: $("add-moderator"),
  ownerOnly: $("mods-owner-only"),
  terms: $("terms"),
  auditPanel: $("audit-panel"),
  audit: $("audit"),
  older: $("older"),
};

const state = { user: null, stream: null, reportState: "open", auditBefore: null };
const path = () => `/api/v1/streams/${encodeURIComponent(state.stream.slug)}`;
const isManager = () => state.user.role === "admin" || state.user.id === state.stream.owner.id;

function status(text) {
  ui.status.textContent = text;
}

function fail(err) {
  show(ui.error, err instanceof Error ? (err.explain ? err.explain() : err.message) : String(err));
}

/** A click or submit handler: errors shown on the page, the status line says what happened. */
function action(fn) {
  return async (event) => {
    event?.preventDefault();
    show(ui.error, "");
    try {
      const said = await fn(event);
      if (typeof said === "string") status(said);
    } catch (err) {
      fail(err);
    }
  };
}

function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

function button(label, name, onclick, extra = "") {
  return el("button", { type: "button", class: `quiet small ${extra}`.trim(), "aria-label": name, onclick: action(onclick) }, label);
}

// -- reports ------------------------------------------------------------------------------

async function loadReports() {
  const { reports } = await api("GET", `${path()}/chat/reports?state=${state.reportState}`);
  const open = state.reportState === "open";
  ui.reports.replaceChildren(
    ...reports.map((r) => {
      const author = r.author_name ?? "someone";
      const about = `${author}'s line “${r.text ?? "(gone)"}”`;
      const body = el(
        "div",
        {},
        el("div", { class: "report-text" }, el("strong", {}, author), ": ", r.text ?? el("em", {}, "deleted")),
        el(
          "div",
          { class: "hint" },
          `Reported by ${r.reporter_name ?? "someone"} ${when(r.created_at)}`,
          r.reason ? ` — ${r.reason}` : "",
        ),
      );
      const buttons = open
        ? el(
            "div",
            { class: "actions" },
            button("Resolve", `Resolve the report of ${about}`, () => resolve(r, "resolve")),
            button("Dismiss", `Dismiss the report of ${about}`, () => resolve(r, "dismiss")),
          )
        : el("span", { class: "badge" }, r.state);
      return el("li", {}, body, buttons);
    }),
  );
  ui.noReports.textContent = `No ${state.reportState} reports.`;
  ui.noReports.hidden = reports.length > 0;
}

async function resolve(report, how) {
  await api("POST", `${path()}/chat/reports/${report.id}`, { action: how });
  await Promise.all([loadReports(), loadAudit(true)]);
  return how === "resolve" ? "Report resolved." : "Report dismissed.";
}

for (const tab of ui.tabs) {
  tab.addEventListener(
    "click",
    action(async () => {
      state.reportState = tab.dataset.state;
      for (const other of ui.tabs) other.setAttribute("aria-pressed", String(other === tab));
      await loadReports();
    }),
  );
}

// -- bans and timeouts --------------------------------------------------------------------

async function loadBans() {
  const { bans } = await api("GET", `${path()}/chat/bans`);
  ui.bans.replaceChildren(
    ...bans.map((b) => {
      const what = b.until ? `timed out until ${when(b.until)}` : "banned";
      const by = b.by ? ` by ${b.by}` : "";
      const reason = b.reason ? ` — ${b.reason}` : "";
      return el(
        "li",
        {},
        el("div", {}, el("strong", {}, b.display_name), ` ${what}${by}${reason}`),
        button("Lift", `Lift ${b.display_name}'s ${b.until ? "timeout" : "ban"}`, async () => {
          await api("DELETE", `${path()}/chat/bans/${b.user_id}`);
          await Promise.all([loadBans(), loadAudit(true)]);
          return `${b.display_name} may chat again.`;
        }),
      );
    }),
  );
  ui.noBans.hidden = bans.length > 0;
}

// -- moderators ---------------------------------------------------------------------------

async function loadModerators() {
  const { users } = await api("GET", `${path()}/moderators`);
  const manager = isManager();
  ui.moderators.replaceChildren(
    ...users.map((u) =>
      el(
        "li",
        {},
        el("span", {}, u.display_name),
        manager
          ? button("Remove", `Remove ${u.display_name} as moderator`, async () => {
              await api("DELETE", `${path()}/moderators/${u.id}`);
              await Promise.all([loadModerators(), loadAudit(true)]);
              return `${u.display_name} is no longer a moderator.`;
            })
          : "",
      ),
    ),
  );
  ui.noModerators.hidden = users.length > 0;
  ui.addModerator.hidden = !manager;
  ui.ownerOnly.hidden = manager;
}

ui.addModerator.addEventListener(
  "submit",
  action(async () => {
    const who = ui.addModerator.elements.user.value.trim();
    const { user } = await api("POST", `${path()}/moderators`, { user: who });
    ui.addModerator.reset();
    await Promise.all([loadModerators(), loadAudit(true)]);
    return `${user.display_name} is now a moderator.`;
  }),
);

// -- banned terms -------------------------------------------------------------------------

async function loadTerms() {
  const settings = await api("GET", `${path()}/chat/settings`);
  ui.terms.elements.banned_terms.value = settings.banned_terms.join("\n");
}

ui.terms.addEventListener(
  "submit",
  action(async () => {
    const lines = ui.terms.elements.banned_terms.value.split("\n").map((t) => t.trim()).filter(Boolean);
    const saved = await api("PATCH", `${path()}/chat/settings`, { banned_terms: [...new Set(lines)] });
    ui.terms.elements.banned_terms.value = saved.banned_terms.join("\n");
    await loadAudit(true);
    const n = saved.banned_terms.length;
    return `Banned terms saved (${n} ${n === 1 ? "term" : "terms"}).`;
  }),
);

// -- audit --------------------------------------------------------------------------------

const ACTIONS = {
  "stream.create": () => "created the stream",
  "stream.update": () => "changed the stream's settings",
  "stream.rotate_key": () => "made a new stream key",
  "stream.moderator_add": (e) => `made ${e.user_name ?? "someone"} a moderator`,
  "stream.moderator_remove": (e) => `removed ${e.user_name ?? "someone"} as moderator`,
  "chat.delete": () => "deleted a chat line",
  "chat.timeout": (e) => `timed out ${e.user_name ?? "someone"} for ${e.details.seconds} s`,
  "chat.ban": (e) => `banned ${e.user_name ?? "someone"}`,
  "chat.unban": (e) => `lifted ${e.user_name ?? "someone"}'s ban or timeout`,
  "chat.settings": (e) => `changed the chat settings (${Object.keys(e.details).join(", ").replaceAll("_", " ")})`,
  "chat.report_resolved": () => "resolved a report",
  "chat.report_dismissed": () => "dismissed a report",
  "recording.delete": () => "deleted a recording",
};

function describe(entry) {
  const said = ACTIONS[entry.action]?.(entry) ?? entry.action;
  const reason = entry.details.reason ? ` (“${entry.details.reason}”)` : "";
  return `${entry.actor?.display_name ?? "An operator"} ${said}${reason}`;
}

/** The newest entries (`fresh`), or the next older page. */
async function loadAudit(fresh = false) {
  if (!isManager()) return;
  if (fresh) state.auditBefore = null;
  const query = state.auditBefore ? `?before=${state.auditBefore}` : "";
  const { entries } = await api("GET", `${path()}/audit${query}`);
  const items = entries.map((e) =>
    el("li", {}, el("time", { dateTime: e.at }, when(e.at)), describe(e)),
  );
  if (fresh) ui.audit.replaceChildren(...items);
  else ui.audit.append(...items);
  if (entries.length) state.auditBefore = entries[entries.length - 1].id;
  ui.older.hidden = entries.length < 100;
}

ui.older.addEventListener("click", action(() => loadAudit(false)));

// -- the stream ---------------------------------------------------------------------------

async function open(slug) {
  const { stream } = await api("GET", `/api/v1/streams/${encodeURIComponent(slug)}`);
  state.stream = stream;
  ui.name.textContent = `· ${stream.title || stream.slug}`;
  document.title = `livecore — moderation · ${stream.title || stream.slug}`;
  ui.auditPanel.hidden = !isManager();
  ui.tools.hidden = false;
  await Promise.all([loadReports(), loadBans(), loadModerators(), loadTerms(), loadAudit(true)]);
}

ui.select.addEventListener(
  "change",
  action(async () => {
    const slug = ui.select.value;
    history.replaceState(null, "", `/studio/moderation?stream=${encodeURIComponent(slug)}`);
    await open(slug);
  }),
);

(async () => {
  try {
    state.user = await me();
    if (!state.user) {
      $("login-link").href = withNext("/login");
      ui.signedOut.hidden = false;
      return;
    }
    const { streams } = await api("GET", "/api/v1/streams?owner=me");
    const wanted = new URLSearchParams(location.search).get("stream") || streams[0]?.slug;
    if (!wanted) {
      status("You have no streams yet: create one in the studio.");
      return;
    }
    const slugs = streams.map((s) => s.slug);
    if (!slugs.includes(wanted)) slugs.unshift(wanted); // a stream this user moderates
    ui.select.replaceChildren(...slugs.map((s) => el("option", { value: s }, s)));
    ui.select.value = wanted;
    ui.pick.hidden = slugs.length < 2;
    await open(wanted);
  } catch (err) {
    fail(err);
  }
})();
