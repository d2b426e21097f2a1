// The admin console (/admin): live streams to end, accounts to suspend or promote, creator
// requests, payouts to settle, the platform's revenue and the audit log. Every section reads
// and acts through the admin API; logged out, the page sends to the login; not an admin, it
// says the console is for admins only.
import { me, withNext } from "./header.js";
import { $, fail, hooks } from "./admin-page.js";
import { REFRESH_MS, loadLive } from "./admin-live.js";
import { loadRequests, setUpUsers } from "./admin-users.js";
import { loadPayouts, loadRevenue } from "./admin-money.js";
import { loadAudit, setUpAudit } from "./admin-audit.js";

async function start() {
  let user;
  try {
    user = await me();
  } catch (err) {
    fail(err);
    return;
  }
  if (!user) {
    location.replace(withNext("/login"));
    return;
  }
  if (user.role !== "admin") {
    $("not-admin").hidden = false;
    return;
  }
  // Asked first: with two-factor sign-in required of admins, every admin route refuses an
  // admin without it, and the page says so once instead of failing in every section.
  try {
    await loadAudit();
  } catch (err) {
    if (err.code === "two_factor_required") {
      $("need-2fa").hidden = false;
      return;
    }
    fail(err);
  }
  $("console").hidden = false;
  setUpUsers();
  setUpAudit();
  hooks.changed = () => loadAudit().catch(fail);
  $("live-refresh").addEventListener("click", () => loadLive().catch(fail));
  // What is live changes by itself: looked at again every few seconds while the page is seen.
  setInterval(() => {
    if (!document.hidden) loadLive().catch(fail);
  }, REFRESH_MS);
  const loads = [loadLive(), loadRequests(), loadPayouts(), loadRevenue()];
  for (const result of await Promise.allSettled(loads)) {
    if (result.status === "rejected") fail(result.reason);
  }
}

start();
