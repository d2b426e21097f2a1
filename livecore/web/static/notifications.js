// The account page's notifications: what came of the reports this account filed (to the
// platform or to a stream's chat moderators), newest first, each with "Mark as read".
import { api, el } from "./api.js";

const TARGETS = { stream: "a stream", line: "a chat line", recording: "a recording", user: "an account" };
const OUTCOMES = {
  delete_line: "the line was deleted.",
  end_broadcast: "the broadcast was ended.",
  take_down_recording: "the recording was taken down.",
  timeout: "its author was timed out of the chat.",
  ban: "its author was banned from the chat.",
  suspend_account: "the account behind it was suspended.",
};

/** A notification in words ("Your report of a stream was acted on: the broadcast was ended."). */
export function words(n) {
  if (n.kind !== "report_closed") return `Notice: ${n.kind.replaceAll("_", " ")}.`;
  const what = TARGETS[n.target_kind] ?? "something";
  const where = n.source === "chat" ? " to the stream's moderators" : "";
  if (n.outcome === "dismiss") {
    return `Your report${where} of ${what} was reviewed and dismissed: no action was taken.`;
  }
  return `Your report${where} of ${what} was acted on: ${OUTCOMES[n.outcome] ?? "action was taken."}`;
}

const when = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

function item(n, fail) {
  const li = el("li", { class: n.read ? "read" : "unread" });
  const text = el("p", {}, words(n));
  const meta = el("p", { class: "hint" }, `${when(n.created_at)}${n.read ? " · read" : " · new"}`);
  li.append(text, meta);
  if (!n.read) {
    const button = el("button", { type: "button", class: "quiet small" }, "Mark as read");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api("POST", `/api/v1/me/notifications/${n.id}/read`);
        li.replaceWith(item({ ...n, read: true }, fail));
      } catch (err) {
        button.disabled = false;
        fail(err);
      }
    });
    li.append(button);
  }
  return li;
}

/** Fill `list` with the account's notifications; `none` shows when there are none. */
export async function loadNotifications(list, none, fail) {
  const { notifications } = await api("GET", "/api/v1/me/notifications");
  list.replaceChildren(...notifications.map((n) => item(n, fail)));
  list.hidden = notifications.length === 0;
  none.hidden = notifications.length > 0;
}
