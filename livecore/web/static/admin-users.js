// Users: search accounts, open one (its streams, tips, money settings), suspend or unsuspend
// it, change its role; and the creator requests waiting for a decision.
import { api, el } from "./api.js";
import { loadLive } from "./admin-live.js";
import { $, fail, filled, hooks, isoFromLocal, money, say, when } from "./admin-page.js";

const ROLES = { viewer: "Viewer", creator: "Creator", admin: "Admin" };
let current = null; // the account open below the results
let lastQuery = "";

function suspensionWords(s) {
  if (!s) return "";
  return `Suspended ${s.until ? `until ${when(s.until)}` : "until lifted"}: ${s.reason}`;
}

async function search(query) {
  lastQuery = query;
  const { users } = await api("GET", `/api/v1/admin/users?q=${encodeURIComponent(query)}`);
  $("users").replaceChildren(
    ...users.map((u) =>
      el(
        "tr", {},
        el("th", { scope: "row" }, u.display_name),
        el("td", {}, u.email),
        el("td", {}, ROLES[u.role] || u.role),
        el("td", {}, u.suspension ? suspensionWords(u.suspension) : "Active"),
        el("td", {}, u.two_factor ? "On" : "Off"),
        el("td", {}, String(u.stream_count)),
        el("td", { class: "row-actions" },
          el("button", { type: "button", class: "quiet small", onclick: () => open(u.id).catch(fail) },
            `Manage ${u.display_name}`)),
      ),
    ),
  );
  filled("users", "no-users", users.length);
}

/** Open an account below the results (also from a payout's creator). */
export async function open(userId) {
  const body = await api("GET", `/api/v1/admin/users/${userId}`);
  current = body.user;
  const u = body.user;
  $("account").hidden = false;
  $("account-heading").textContent = `${u.display_name} (${u.email})`;
  const facts = [
    ["Role", ROLES[u.role] || u.role],
    ["Standing", u.suspension ? suspensionWords(u.suspension) : "Active"],
    ["Two-factor sign-in", u.two_factor ? "On" : "Off"],
    ["Joined", when(u.created_at)],
  ];
  $("account-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("suspend-form").hidden = Boolean(u.suspension);
  $("unsuspend-box").hidden = !u.suspension;
  $("suspension-words").textContent = suspensionWords(u.suspension);
  $("role-form").elements.role.value = u.role;
  const moneyForm = $("money-form");
  moneyForm.hidden = body.money === null;
  if (body.money) {
    moneyForm.elements.platform_fee_bps.value = body.money.platform_fee_bps ?? "";
    moneyForm.elements.stripe_account_id.value = body.money.stripe_account_id ?? "";
  }
  $("account-streams").replaceChildren(
    ...(body.streams.length
      ? body.streams.map((s) =>
          el("li", {}, el("a", { href: `/watch/${encodeURIComponent(s.slug)}` }, s.title || s.slug),
            ` · ${s.slug} · ${s.state}`))
      : [el("li", { class: "hint" }, "No streams.")]),
  );
  $("account-tips").replaceChildren(
    ...body.tips.map((t) =>
      el("tr", {},
        el("td", {}, when(t.created_at)), el("td", {}, t.from.display_name || `#${t.from.id}`),
        el("td", {}, t.to.display_name || `#${t.to.id}`), el("td", {}, t.stream || ""),
        el("td", {}, money(t.amount_minor, t.currency)), el("td", {}, t.status)),
    ),
  );
  filled("account-tips", "no-account-tips", body.tips.length);
  $("account").scrollIntoView({ block: "nearest" });
}

async function refresh(message) {
  hooks.changed();
  // The message once the account is shown as it is now (its forms are filled in again);
  // the act itself succeeded even if showing it again fails.
  try {
    await Promise.all([search(lastQuery), open(current.id)]);
    say(message);
  } catch (err) {
    say(message);
    fail(err);
  }
}

async function suspend(event) {
  event.preventDefault();
  const form = event.target;
  const payload = { reason: form.elements.reason.value.trim() };
  const until = isoFromLocal(form.elements.until.value);
  if (until) payload.until = until;
  try {
    const answer = await api("POST", `/api/v1/admin/users/${current.id}/suspension`, payload);
    form.reset();
    const ended = answer.ended_streams.length ? ` Ended: ${answer.ended_streams.join(", ")}.` : "";
    if (answer.ended_streams.length) loadLive().catch(fail);
    await refresh(`Suspended ${current.display_name}.${ended}`);
  } catch (err) {
    fail(err);
  }
}

async function unsuspend() {
  try {
    await api("DELETE", `/api/v1/admin/users/${current.id}/suspension`);
    await refresh(`${current.display_name} is no longer suspended.`);
  } catch (err) {
    fail(err);
  }
}

async function changeRole(event) {
  event.preventDefault();
  const role = event.target.elements.role.value;
  try {
    await api("PUT", `/api/v1/admin/users/${current.id}/role`, { role });
    await refresh(`${current.display_name} is now ${ROLES[role].toLowerCase()}.`);
  } catch (err) {
    fail(err);
  }
}

async function saveMoney(event) {
  event.preventDefault();
  const f = event.target.elements;
  const bps = f.platform_fee_bps.value.trim();
  const account = f.stripe_account_id.value.trim();
  try {
    await api("PUT", `/api/v1/admin/creators/${current.id}/money`, {
      platform_fee_bps: bps === "" ? null : Number(bps),
      stripe_account_id: account || null,
    });
    await refresh(`Saved the money settings of ${current.display_name}.`);
  } catch (err) {
    fail(err);
  }
}

export async function loadRequests() {
  const { requests } = await api("GET", "/api/v1/admin/creator-requests?state=pending");
  $("requests").replaceChildren(
    ...requests.map((r) => {
      const name = r.user.display_name;
      const decide = (verb) => async () => {
        try {
          await api("POST", `/api/v1/admin/creator-requests/${r.id}/${verb}`);
          say(`${verb === "approve" ? "Approved" : "Declined"} ${name}'s request to be a creator.`);
          hooks.changed();
          await loadRequests();
        } catch (err) {
          fail(err);
        }
      };
      return el(
        "li", {},
        el("span", {}, `${name} (${r.user.email}) asked ${when(r.created_at)}`),
        el("span", { class: "row-actions" },
          el("button", { type: "button", class: "small", onclick: decide("approve"), "aria-label": `Approve ${name}` }, "Approve"),
          el("button", { type: "button", class: "quiet small", onclick: decide("decline"), "aria-label": `Decline ${name}` }, "Decline")),
      );
    }),
  );
  $("no-requests").hidden = requests.length > 0;
}

export function setUpUsers() {
  $("user-search").addEventListener("submit", (event) => {
    event.preventDefault();
    search(event.target.elements.q.value.trim()).catch(fail);
  });
  $("suspend-form").addEventListener("submit", suspend);
  $("unsuspend").addEventListener("click", unsuspend);
  $("role-form").addEventListener("submit", changeRole);
  $("money-form").addEventListener("submit", saveMoney);
  search("").catch(fail);
}
