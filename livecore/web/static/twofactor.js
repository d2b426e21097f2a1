// Two-factor authentication on the account pages: the code step of a login, and turning
// 2FA on (QR code, setup key, first code, recovery codes) and off on the account page.
import { ApiError, api, el, show } from "./api.js";

const $ = (id) => document.getElementById(id);

function explain(err) {
  return err instanceof ApiError ? err.explain() : String(err.message || err);
}

/** Run `fn()` for a form's submission, one at a time; errors go to `error`. */
function submitting(form, error, fn) {
  form.onsubmit = async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button.disabled) return;
    button.disabled = true;
    show(error, "");
    try {
      await fn();
    } catch (err) {
      show(error, explain(err));
    } finally {
      button.disabled = false;
    }
  };
}

/**
 * The login's second step, after the password step answered `two_factor_required`: the
 * password form gives way to the code form; `done()` runs once the session is made. When the
 * pending login has expired, the password form comes back with the reason.
 */
export function askForCode(pendingToken, passwordForm, passwordError, done) {
  const form = $("code-form");
  const error = $("code-error");
  passwordForm.hidden = true;
  form.hidden = false;
  form.reset();
  form.elements.code.focus();
  submitting(form, error, async () => {
    try {
      await api("POST", "/api/v1/auth/login/2fa", {
        pending_token: pendingToken,
        code: form.elements.code.value.trim(),
      });
    } catch (err) {
      if (err instanceof ApiError && err.code === "login_expired") {
        form.hidden = true;
        passwordForm.hidden = false;
        show(passwordError, err.message);
        return;
      }
      form.elements.code.select();
      throw err;
    }
    done();
  });
}

function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** "ABCD EFGH ...": the setup key in groups of four, easier to type into an app. */
function grouped(secret) {
  return secret.match(/.{1,4}/g).join(" ");
}

/** The account page's panel; `say(text)` reports what changed in the page's status line. */
export async function twoFactorPanel(say) {
  const state = $("tfa-state");
  const start = $("tfa-start");
  const enrol = $("tfa-enrol");
  const disable = $("tfa-disable");
  const recovery = $("tfa-recovery");
  const error = $("tfa-error");

  async function refresh() {
    const { two_factor: tf } = await api("GET", "/api/v1/me/2fa");
    state.textContent = tf.enabled
      ? `On since ${when(tf.enabled_at)}: logging in asks for a code from your authenticator ` +
        `app. ${tf.recovery_codes_left} recovery codes left.`
      : "Off: logging in asks only for your password.";
    start.hidden = tf.enabled;
    disable.hidden = !tf.enabled;
    enrol.hidden = true;
  }

  start.addEventListener("click", async () => {
    show(error, "");
    recovery.hidden = true;
    try {
      const setup = await api("POST", "/api/v1/me/2fa/enrol");
      $("tfa-qr").src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(setup.qr_svg)}`;
      $("tfa-secret").textContent = grouped(setup.secret);
      start.hidden = true;
      enrol.hidden = false;
      enrol.reset();
      enrol.elements.code.focus();
    } catch (err) {
      show(error, explain(err));
    }
  });

  submitting(enrol, error, async () => {
    const { recovery_codes: codes } = await api("POST", "/api/v1/me/2fa/confirm", {
      code: enrol.elements.code.value.trim(),
      password: enrol.elements.password.value,
    });
    $("tfa-codes").replaceChildren(...codes.map((c) => el("li", {}, el("code", {}, c))));
    recovery.hidden = false;
    await refresh();
    say("Two-factor authentication is on. Save your recovery codes now.");
  });

  submitting(disable, error, async () => {
    const code = disable.elements.code.value.trim();
    const password = disable.elements.password.value;
    await api("POST", "/api/v1/me/2fa/disable", code ? { code } : { password });
    disable.reset();
    recovery.hidden = true;
    await refresh();
    say("Two-factor authentication is off.");
  });

  await refresh();
}
