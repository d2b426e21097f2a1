// The header every page shares: who is logged in (a link to their account, their
// subscriptions, and "Log out"), or "Log in" and "Sign up" links that come back to this page
// afterwards.
import { CSRF_COOKIE, api, cookie, el } from "./api.js";

let current = null; // the promise of the logged-in user (or null), asked once per page

/** The logged-in user, or null. Without the CSRF cookie nobody is logged in: no request. */
export function me() {
  if (current === null) {
    current = cookie(CSRF_COOKIE)
      ? api("GET", "/api/v1/me").then(
          ({ user }) => user,
          (err) => {
            if (err.status === 401) return null;
            throw err;
          },
        )
      : Promise.resolve(null);
  }
  return current;
}

/** Where to go after logging in: a path on this site only (never another origin). */
export function nextPath(fallback = "/") {
  const next = new URLSearchParams(location.search).get("next") || "";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : fallback;
}

/** `/login?next=<this page>`, for links that should come back here. */
export function withNext(path) {
  const here = location.pathname + location.search;
  return `${path}?next=${encodeURIComponent(here)}`;
}

export async function logOut() {
  try {
    await api("POST", "/api/v1/auth/logout");
  } catch (err) {
    if (err.status !== 401) throw err; // already over: logged out all the same
  }
  location.reload();
}

async function render() {
  const slot = document.getElementById("account-nav");
  if (!slot) return;
  let user = null;
  try {
    user = await me();
  } catch {
    return; // the page shows its own errors; the header stays empty
  }
  const onAccountPage = location.pathname === "/account";
  if (user) {
    const name = el("a", { href: "/account", class: "who" }, user.display_name || user.email);
    if (onAccountPage) name.setAttribute("aria-current", "page");
    const subs = el("a", { href: "/subscriptions" }, "My subscriptions");
    if (location.pathname === "/subscriptions") subs.setAttribute("aria-current", "page");
    const out = el("button", { type: "button", class: "quiet", onclick: () => logOut() }, "Log out");
    slot.replaceChildren(subs, name, out);
    if (user.role === "admin" && location.pathname !== "/admin") {
      slot.prepend(el("a", { href: "/admin" }, "Admin console"));
    }
  } else if (!["/login", "/signup"].includes(location.pathname)) {
    slot.replaceChildren(
      el("a", { href: withNext("/login") }, "Log in"),
      el("a", { href: withNext("/signup"), class: "button" }, "Sign up"),
    );
  } else {
    slot.replaceChildren();
  }
}

render();
