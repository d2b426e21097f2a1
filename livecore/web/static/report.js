// "Report stream" on the watch page: a category and a note, filed with the platform's review
// queue (POST /api/v1/reports). Logged out, the button leads to the login and back here. The
// outcome reaches the reporter later as a notification on their account page.
import { api, el, show } from "./api.js";
import { me, withNext } from "./header.js";

// The API's categories, in words.
const CATEGORIES = [
  ["spam", "Spam"],
  ["harassment_or_hate", "Harassment or hate"],
  ["violence", "Violence"],
  ["sexual_content", "Sexual content"],
  ["minor_safety", "A minor's safety"],
  ["illegal", "Illegal content"],
  ["copyright", "Copyright"],
  ["self_harm", "Self-harm"],
  ["other", "Something else"],
];

/** Refusals the reporter can act on, in words; others keep the server's message. */
function refusal(err) {
  if (err.status === 409) {
    return "You have reported this stream already. The review of that report is still open: your account page will say what came of it.";
  }
  if (err.status === 401) return "Your session has ended: log in again to report.";
  return err.explain ? err.explain({ category: "Category", note: "Note" }) : String(err.message || err);
}

/** Add "Report stream" to `slot`; `status` tells the viewer the report was filed. */
export async function startReport(slot, slug, stream, status) {
  const user = await me().catch(() => null);
  if (user && user.id === stream.owner.id) return; // the owner has the studio's tools instead
  const opener = el("button", { type: "button", class: "quiet", "aria-haspopup": "dialog" }, "Report stream");
  slot.append(opener);
  if (!user) {
    opener.removeAttribute("aria-haspopup");
    opener.addEventListener("click", () => location.assign(withNext("/login")));
    return;
  }
  const name = stream.title || slug;
  const category = el("select", { name: "category", required: true },
    el("option", { value: "" }, "Choose one"), ...CATEGORIES.map(([v, t]) => el("option", { value: v }, t)));
  const note = el("textarea", { name: "note", maxLength: 2000, rows: 3 });
  const outcome = el("p", { class: "error", role: "alert", hidden: true });
  const dialog = el("dialog", { class: "sheet", "aria-labelledby": "report-title" });
  const send = el("button", { type: "submit" }, "Send report");
  const cancel = el("button", { type: "button", class: "quiet", onclick: () => dialog.close() }, "Cancel");
  const form = el("form", { novalidate: true },
    el("h2", { id: "report-title" }, `Report ${name}`),
    el("p", { class: "hint" }, "The platform's reviewers look at every report. Your name is not shown to the streamer."),
    el("label", {}, "Category", category),
    el("label", {}, "Note (optional)", note),
    outcome,
    el("div", { class: "actions" }, send, cancel));
  dialog.append(form);
  document.body.append(dialog);
  opener.addEventListener("click", () => {
    show(outcome, "");
    dialog.showModal();
    category.focus();
  });
  dialog.addEventListener("close", () => opener.focus());
  category.addEventListener("change", () => show(outcome, "")); // the last refusal is stale
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!category.value) {
      show(outcome, "Choose what is wrong with the stream.");
      category.focus();
      return;
    }
    send.disabled = true;
    try {
      await api("POST", "/api/v1/reports", {
        target_kind: "stream", stream: slug, category: category.value, note: note.value.trim(),
      });
      form.reset();
      dialog.close();
      show(status, "Thank you: your report is with the platform's reviewers. Your account page will say what came of it.");
    } catch (err) {
      show(outcome, refusal(err));
    } finally {
      send.disabled = false;
    }
  });
}
