// The account pages: log in, sign up, forgot password, the reset page the mail links to,
// and "your account" (change password, sessions, log out everywhere). One module for all:
// the page says which it is in <body data-page>.
import { ApiError, api, el, show } from "./api.js";
import { me, nextPath } from "./header.js";
import { askForCode, twoFactorPanel } from "./twofactor.js";

const $ = (id) => document.getElementById(id);
const page = document.body.dataset.page;
const form = $("form");
const error = $("error");
const status = $("status");

function fail(err) {
  // A suspension's fields are its reason and end, which its message already says in words.
  const suspended = err instanceof ApiError && err.code === "account_suspended";
  show(error, err instanceof ApiError && !suspended ? err.explain() : String(err.message || err));
}

const REQUEST_STATES = {
  pending: "Your request to become a creator is waiting for an admin.",
  approved: "Your request to become a creator was approved: the studio is yours.",
  declined: "Your request to become a creator was declined.",
};

/** The decisions about this account it may read: its creator request (if it made one). */
async function loadStanding() {
  const { creator_request: request } = await api("GET", "/api/v1/me/standing");
  if (!request) return;
  $("creator-state").textContent = REQUEST_STATES[request.state];
  $("creator-request").hidden = false;
}

/** Submit `form` with `fn(data)`: one submission at a time, errors shown above the fields. */
function onSubmit(fn) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button.disabled) return;
    button.disabled = true;
    show(error, "");
    try {
      await fn(Object.fromEntries(new FormData(form)));
    } catch (err) {
      fail(err);
    } finally {
      button.disabled = false;
    }
  });
}

/** Keep `?next=` on the link to the other form, so signing up instead still comes back. */
function keepNext() {
  const other = $("other");
  const next = nextPath("");
  if (other && next) other.href = `${other.pathname}?next=${encodeURIComponent(next)}`;
}

function login() {
  keepNext();
  onSubmit(async ({ email, password }) => {
    const answer = await api("POST", "/api/v1/auth/login", { email, password });
    const done = () => location.assign(nextPath("/"));
    if (answer.two_factor_required) askForCode(answer.pending_token, form, error, done);
    else done();
  });
}

function signup() {
  keepNext();
  // Coming from the studio: most likely to stream.
  if (nextPath("").startsWith("/studio")) form.elements.creator.checked = true;
  onSubmit(async ({ email, password, display_name, creator }) => {
    await api("POST", "/api/v1/auth/register", { email, password, display_name, creator: creator === "on" });
    location.assign(nextPath("/"));
  });
}

function forgotPassword() {
  onSubmit(async ({ email }) => {
    await api("POST", "/api/v1/auth/password-reset", { email });
    form.reset();
    status.textContent =
      "If an account with this email exists, a link to choose a new password is on its way. " +
      "It works once, for a limited time.";
  });
}

function resetPassword() {
  // The mail's link carries the token in the fragment (never sent to the server). Take it
  // out of the address bar at once, so it is not left in the history or a screenshot.
  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  history.replaceState(null, "", location.pathname);
  // A link opened again in this tab changes only the fragment: start over with its token.
  window.addEventListener("hashchange", () => location.reload());
  if (!token) {
    form.hidden = true;
    status.append(
      "This page needs the link from the reset mail. ",
      el("a", { href: "/forgot-password" }, "Ask for a new link"),
      ".",
    );
    return;
  }
  onSubmit(async ({ password }) => {
    try {
      await api("POST", "/api/v1/auth/password-reset/confirm", { token, password });
    } catch (err) {
      if (err instanceof ApiError && err.fields && err.fields.token) {
        form.hidden = true;
        status.replaceChildren(
          "This link is used or expired. ",
          el("a", { href: "/forgot-password" }, "Ask for a new link"),
          ".",
        );
        return;
      }
      throw err;
    }
    form.hidden = true;
    status.replaceChildren(
      "Your password is changed, and every session of your account has ended. ",
      el("a", { href: "/login" }, "Log in"),
      " with the new password.",
    );
  });
}

/** "Firefox on Linux" from a User-Agent string, good enough to recognise a device. */
function device(agent) {
  if (!agent) return "Unknown device";
  const browser = /Edg\//.test(agent)
    ? "Edge"
    : /Firefox\//.test(agent)
      ? "Firefox"
      : /Chrom(e|ium)\//.test(agent)
        ? "Chrome"
        : /Safari\//.test(agent)
          ? "Safari"
          : agent.split(/[ /]/)[0] || "A client";
  const system = /Android/.test(agent)
    ? "Android"
    : /iPhone|iPad/.test(agent)
      ? "iOS"
      : /Mac OS X/.test(agent)
        ? "macOS"
        : /Windows/.test(agent)
          ? "Windows"
          : /Linux/.test(agent)
            ? "Linux"
            : "";
  return system ? `${browser} on ${system}` : browser;
}

function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

async function loadSessions() {
  const { sessions } = await api("GET", "/api/v1/auth/sessions");
  $("sessions").replaceChildren(
    ...sessions.map((s) => {
      const label = device(s.user_agent);
      const item = el(
        "li",
        {},
        el("span", { class: "device" }, label),
        el("span", { class: "hint" }, ` · since ${when(s.created_at)} · last seen ${when(s.last_seen_at)}`),
      );
      if (s.current) {
        item.append(" ", el("span", { class: "badge" }, "this browser"));
      } else {
        item.append(
          " ",
          el(
            "button",
            {
              type: "button",
              class: "quiet",
              "aria-label": `Log out ${label}, last seen ${when(s.last_seen_at)}`,
              onclick: async () => {
                try {
                  await api("DELETE", `/api/v1/auth/sessions/${s.id}`);
                  await loadSessions();
                } catch (err) {
                  fail(err);
                }
              },
            },
            "Log out",
          ),
        );
      }
      return item;
    }),
  );
}

/** "Download my data": the export as a file (GET /api/v1/me/export). */
async function downloadData() {
  const data = await api("GET", "/api/v1/me/export");
  const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
  const day = new Date().toISOString().slice(0, 10);
  const link = el("a", { href: url, download: `livecore-data-${day}.json`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** "Delete my account", then the confirm step that asks for the password (and a code). */
function deletion() {
  const start = $("delete-start");
  const confirmForm = $("delete-form");
  const dataError = $("data-error");
  const deleteError = $("delete-error");
  const open = (opened) => {
    confirmForm.hidden = !opened;
    start.setAttribute("aria-expanded", String(opened));
    if (opened) confirmForm.querySelector("input[name=password]").focus();
    else start.focus();
  };
  start.addEventListener("click", () => open(confirmForm.hidden));
  $("delete-cancel").addEventListener("click", () => {
    confirmForm.reset();
    show(deleteError, "");
    open(false);
  });
  $("data-download").addEventListener("click", async () => {
    show(dataError, "");
    try {
      await downloadData();
      status.textContent = "Your data was downloaded.";
    } catch (err) {
      show(dataError, err instanceof ApiError ? err.explain() : String(err.message || err));
    }
  });
  confirmForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = confirmForm.querySelector("button[type=submit]");
    if (button.disabled) return;
    button.disabled = true;
    show(deleteError, "");
    const { password, code } = Object.fromEntries(new FormData(confirmForm));
    try {
      await api("DELETE", "/api/v1/me", code ? { password, code } : { password });
      $("signed-in").hidden = true;
      status.textContent = "Your account is deleted. Goodbye.";
      $("account-nav").replaceChildren(el("a", { href: "/login" }, "Log in"));
    } catch (err) {
      show(deleteError, err instanceof ApiError ? err.explain({ code: "the code" }) : String(err.message || err));
    } finally {
      button.disabled = false;
    }
  });
}

async function account() {
  const user = await me();
  if (!user) {
    location.replace(`/login?next=${encodeURIComponent("/account")}`);
    return;
  }
  $("signed-in").hidden = false;
  $("whoami").textContent = `Logged in as ${user.display_name} (${user.email}).`;
  await loadStanding();
  onSubmit(async ({ current_password, new_password }) => {
    await api("POST", "/api/v1/auth/password", { current_password, new_password });
    form.reset();
    status.textContent = "Password changed. Your other sessions have ended.";
    await loadSessions();
  });
  $("everywhere").addEventListener("click", async () => {
    try {
      await api("DELETE", "/api/v1/auth/sessions");
      location.assign("/login");
    } catch (err) {
      fail(err);
    }
  });
  deletion();
  await Promise.all([loadSessions(), twoFactorPanel((text) => (status.textContent = text))]);
}

const pages = {
  login,
  signup,
  "forgot-password": forgotPassword,
  "reset-password": resetPassword,
  account,
};
Promise.resolve(pages[page]()).catch(fail);
