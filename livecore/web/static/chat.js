// The chat panel of the watch page and the studio: its markup (renderChatPanel, so the class
// names startChat looks for are written once, here) and one WebSocket to /ws/{slug} (the
// protocol is in the README's chat section). History on join, live lines, tips and
// moderation; the send box; every refusal in words. The socket also carries the stream's
// state and viewer count, which the page shows.
//
// Busy rooms: events are queued and drawn once per animation frame, and the list keeps only
// the last MAX_LINES lines, so a room at hundreds of lines a second costs one small DOM
// update per frame. Reconnects back off with jitter; event ids (never given twice in a room)
// drop what was already shown, and hello's history fills in what was missed.
import { api, el, show } from "./api.js";
import { withNext } from "./header.js";

const MAX_LINES = 200; // lines kept on the page; older ones leave from the top
const MAX_SEEN = 4000; // event ids remembered to drop repeats
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const STICK_PX = 48; // this close to the bottom: follow new lines
const STAFF = new Set(["owner", "moderator", "admin"]);
const BADGES = { owner: "Owner", moderator: "Mod", admin: "Admin", subscriber: "Sub" };
const TIMEOUTS = [
  [60, "1 min"],
  [600, "10 min"],
  [3600, "1 hour"],
  [86_400, "1 day"],
];
const REFUSALS = {
  login_required: "Log in to chat.",
  banned: "You are banned from this chat.",
  subscribers_only: "Only subscribers can chat here right now.",
  empty: "Type a message first.",
  control_chars: "Your message has characters that cannot be sent.",
  link: "Links are not allowed in this chat.",
  banned_term: "Your message has a word that is not allowed in this chat.",
  duplicate: "You just sent this message.",
  unavailable: "Chat is unavailable right now: try again in a moment.",
  not_stored: "Your message could not be saved: try again.",
  flooding: "Slow down: too many messages at once.",
};

const SLOW_MODES = [
  [0, "Off"],
  [3, "3 s"],
  [10, "10 s"],
  [30, "30 s"],
  [60, "1 min"],
  [120, "2 min"],
];

/**
 * Fill `root`, the page's `<section id="chat" class="chat-panel" aria-label="Chat">`, with
 * the panel startChat drives; `heading` ("h2", "h3") is the tag of its "Chat" heading, the
 * level that fits the page's outline. Call it before anything looks inside the panel.
 */
export function renderChatPanel(root, heading) {
  const hidden = true;
  const check = (name, text) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", name }), ` ${text}`);
  const slowModes = SLOW_MODES.map(([s, text]) => el("option", { value: `${s}` }, text));
  root.replaceChildren(
    el("div", { class: "chat-top" },
      el(heading, { class: "chat-head" }, "Chat ",
        el("span", { class: "chat-connection", role: "status", hidden })),
      el("button", { class: "chat-settings-toggle quiet", type: "button", "aria-expanded": "false",
        "aria-controls": "chat-settings", hidden }, "Chat settings")),
    el("p", { class: "chat-mode" }),
    el("p", { class: "chat-line", role: "status", "aria-live": "polite", hidden }),
    el("form", { id: "chat-settings", class: "chat-settings", hidden },
      el("label", {}, "Slow mode ", el("select", { name: "slow_mode_s" }, ...slowModes)),
      check("subscribers_only", "Subscribers only"),
      check("links_allowed", "Links allowed"),
      el("label", {}, "Banned terms, one per line ",
        el("textarea", { name: "banned_terms", rows: 3 })),
      el("div", { class: "actions" },
        el("button", { type: "submit" }, "Save settings"),
        el("button", { type: "button", class: "quiet chat-settings-cancel" }, "Cancel"))),
    el("div", { class: "chat-log", role: "log", "aria-label": "Chat lines", tabindex: "0" }),
    el("p", { class: "chat-notice", role: "status", hidden }),
    el("form", { class: "chat-form", hidden },
      el("label", { class: "visually-hidden", for: "chat-input" }, "Chat message"),
      el("input", { id: "chat-input", name: "text", autocomplete: "off", maxlength: "2000",
        placeholder: "Say something" }),
      el("button", { type: "submit" }, "Send")),
    el("p", { class: "chat-prompt", hidden }),
    el("div", { class: "line-actions", role: "group", "aria-label": "Line actions", hidden }),
  );
}

function nonce() {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

function clock(unixS) {
  return new Date(unixS * 1000).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function money(amountMinor, currency) {
  try {
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() });
    return format.format(amountMinor / 10 ** format.resolvedOptions().maximumFractionDigits);
  } catch {
    return `${(amountMinor / 100).toFixed(2)} ${currency.toUpperCase()}`;
  }
}

const ENDED_BY = { owner: "the creator", moderator: "a moderator", admin: "the platform", platform: "the platform" };

/** What to tell people when someone ended the broadcast (a stream_state with a reason). */
export function endedMessage(event) {
  const who = ENDED_BY[event.ended_by];
  return who
    ? `This broadcast was ended by ${who}: ${event.reason}`
    : `This broadcast was ended: ${event.reason}`;
}

/**
 * Start the panel in `root` (the "Chat" region). `on.state(state, event)` and `on.viewers(count)`
 * hear the socket's stream_state and viewer_count events; `on.connected()` each hello;
 * `on.tip(event)` each new tip. Returns `{stop()}`.
 */
export function startChat(root, slug, on) {
  const $ = (sel) => root.querySelector(sel);
  const log = $(".chat-log");
  const modeLine = $(".chat-mode");
  const connection = $(".chat-connection");
  const lineNote = $(".chat-line");
  const form = $(".chat-form");
  const input = $(".chat-form input");
  const sendButton = $(".chat-form button");
  const notice = $(".chat-notice");
  const prompt = $(".chat-prompt");
  const menu = $(".line-actions");
  const settingsToggle = $(".chat-settings-toggle");
  const settingsForm = $(".chat-settings");
  const base = `/api/v1/streams/${encodeURIComponent(slug)}/chat`;

  let socket = null;
  let attempts = 0;
  let me = null; // hello's user: {id, name, badges}
  let mode = {};
  let lastId = 0; // the highest event id shown
  const seen = new Set();
  const lines = new Map(); // message id -> <li>
  let queue = []; // events waiting for the next frame
  let frame = 0;
  const sent = new Map(); // nonce -> text, until acked or refused
  let waitUntil = 0; // ms: slow mode, timeout or rate limit ends
  let waitWhy = "";
  let blocked = ""; // banned: nothing to count down
  let ticker = 0;

  // -- drawing, once per frame ---------------------------------------------------------

  function enqueue(event) {
    queue.push(event);
    if (!frame) frame = requestAnimationFrame(flush);
  }

  function flush() {
    frame = 0;
    let events = queue;
    queue = [];
    // Frames wait while the tab is hidden: only what can still be on screen is drawn.
    if (events.length > MAX_LINES * 4) events = events.slice(-MAX_LINES * 4);
    const stick = log.scrollHeight - log.scrollTop - log.clientHeight < STICK_PX;
    const added = document.createDocumentFragment();
    for (const event of events) {
      if (event.type === "chat" || event.type === "tip" || event.type === "notice") {
        const item = lineFor(event);
        added.append(item);
        if (event.type === "chat") lines.set(event.id, item);
      } else if (event.type === "chat_deleted") {
        const item = lines.get(event.message_id);
        if (item) {
          if (menu.parentElement === item) closeMenu();
          item.remove();
          lines.delete(event.message_id);
        }
      }
    }
    log.append(added);
    let extra = log.childElementCount - MAX_LINES;
    while (extra-- > 0) {
      const first = log.firstElementChild;
      if (menu.parentElement === first) closeMenu();
      lines.delete(Number(first.dataset.id));
      first.remove();
    }
    if (stick) log.scrollTop = log.scrollHeight;
  }

  function lineFor(event) {
    const item = el("div", { class: `line ${event.type}` });
    if (event.type === "notice") {
      item.append(event.text);
      return item;
    }
    item.dataset.id = event.id;
    const user = event.user || {};
    const badges = (user.badges || []).filter((b) => BADGES[b]);
    const name = el("span", { class: "name" }, user.name || "someone");
    if (event.type === "tip") {
      const text = event.message ? `: ${event.message}` : "";
      item.append(name, ` tipped ${money(event.amount_minor, event.currency)}${text}`);
      return item;
    }
    if (me && user.id === me.id) item.classList.add("mine");
    for (const badge of badges) item.append(el("span", { class: `tag tag-${badge}` }, BADGES[badge]), " ");
    item.append(name, ": ", el("span", { class: "text" }, event.text));
    if (me) {
      item.dataset.user = user.id;
      item.dataset.name = user.name || "";
      item.append(
        " ",
        el("button", { type: "button", class: "line-menu", "aria-haspopup": "true", "aria-expanded": "false", "aria-label": `Actions for ${user.name}'s line` }, "⋯"),
      );
    }
    return item;
  }

  // -- events --------------------------------------------------------------------------

  function fresh(event) {
    if (!event.id) return true; // node-local (viewer counts): never repeated
    if (seen.has(event.id)) return false;
    seen.add(event.id);
    if (seen.size > MAX_SEEN) seen.delete(seen.values().next().value);
    return true;
  }

  function handle(event) {
    switch (event.type) {
      case "hello":
        return hello(event);
      case "chat":
      case "tip":
      case "chat_deleted":
        if (!fresh(event)) return;
        lastId = Math.max(lastId, event.id);
        if (event.type === "tip") on.tip?.(event);
        return enqueue(event);
      case "room_mode":
        mode = event;
        return showMode();
      case "user_timed_out":
        if (!fresh(event)) return;
        if (me && event.user_id === me.id) {
          startWait(event.until * 1000, "timed_out");
        }
        return;
      case "user_banned":
        if (me && event.user_id === me.id && fresh(event)) refuse({ code: "banned" });
        return;
      case "user_unbanned":
        if (me && event.user_id === me.id && fresh(event)) {
          blocked = "";
          updateSendBox();
          showNotice("You may chat again.");
        }
        return;
      case "viewer_count":
        return on.viewers(event.count);
      case "stream_state":
        return on.state(event.state, event); // an end asked for carries ended_by and reason
      case "ack":
        if (event.nonce && sent.has(event.nonce)) {
          if (input.value === sent.get(event.nonce)) input.value = "";
          sent.delete(event.nonce);
          if (mode.slow_mode_s && !isStaff()) startWait(Date.now() + mode.slow_mode_s * 1000, "slow_mode");
          else showNotice("");
        }
        return;
      case "error":
        if (event.nonce) sent.delete(event.nonce);
        return refuse(event);
    }
  }

  function hello(event) {
    attempts = 0;
    show(lineNote, "");
    me = event.user;
    mode = event.room_mode || {};
    showMode();
    show(connection, "");
    const resumed = lastId; // lines above this were shown before the socket dropped
    for (const past of event.history || []) {
      if (past.type === "chat_deleted") {
        if (fresh(past)) enqueue(past);
      } else if (past.id > resumed && fresh(past)) {
        lastId = Math.max(lastId, past.id);
        enqueue(past);
      }
    }
    prompt.hidden = Boolean(me);
    form.hidden = !me;
    if (!me) {
      prompt.replaceChildren(
        el("a", { href: withNext("/login") }, "Log in"),
        " or ",
        el("a", { href: withNext("/signup") }, "sign up"),
        " to chat.",
      );
    }
    settingsToggle.hidden = !isStaff();
    updateSendBox();
    on.connected?.(); // state changes while the socket was down were not told
  }

  function isStaff() {
    return Boolean(me && me.badges.some((b) => STAFF.has(b)));
  }

  function showMode() {
    const parts = [];
    if (mode.slow_mode_s) parts.push(`Slow mode: one message every ${mode.slow_mode_s} s`);
    if (mode.subscribers_only) parts.push("Subscribers only");
    if (mode.links_allowed === false) parts.push("No links");
    modeLine.textContent = parts.join(" · ");
  }

  // -- refusals and waits --------------------------------------------------------------

  function showNotice(text) {
    show(notice, text);
  }

  function refuse(error) {
    const after = Number(error.retry_after_s) || 0;
    if (error.code === "slow_mode" || error.code === "rate_limited" || error.code === "timed_out") {
      return startWait(Date.now() + Math.max(after, 1) * 1000, error.code);
    }
    if (error.code === "banned") {
      blocked = REFUSALS.banned;
      updateSendBox();
      return showNotice(blocked);
    }
    if (error.code === "too_long") {
      const most = mode.max_length ? `: at most ${mode.max_length} characters` : "";
      return showNotice(`Your message is too long${most}.`);
    }
    showNotice(REFUSALS[error.code] || error.message || "Your message was refused.");
  }

  function startWait(untilMs, why) {
    waitUntil = untilMs;
    waitWhy = why;
    clearInterval(ticker);
    tick();
    ticker = setInterval(tick, 1000);
  }

  function tick() {
    const left = Math.ceil((waitUntil - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(ticker);
      waitUntil = 0;
      updateSendBox();
      showNotice(waitWhy === "timed_out" ? "Your timeout is over: you may chat again." : "");
      return;
    }
    updateSendBox();
    if (waitWhy === "slow_mode") showNotice(`Slow mode: you can send again in ${left} s.`);
    else if (waitWhy === "rate_limited") showNotice(`You are sending too fast: wait ${left} s.`);
    else showNotice(`You are timed out until ${clock(waitUntil / 1000)} (${left} s left).`);
  }

  function updateSendBox() {
    const open = socket && socket.readyState === WebSocket.OPEN;
    sendButton.disabled = !open || Boolean(blocked) || waitUntil > Date.now();
    input.disabled = Boolean(blocked);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return showNotice(REFUSALS.empty);
    if (!socket || socket.readyState !== WebSocket.OPEN) return showNotice("Not connected: wait a moment.");
    const id = nonce();
    sent.set(id, text);
    socket.send(JSON.stringify({ type: "chat", text, nonce: id }));
  });

  // -- the line menu: report, and for moderators delete, timeout, ban -------------------

  function closeMenu() {
    const opener = menu.parentElement?.querySelector(".line-menu");
    opener?.setAttribute("aria-expanded", "false");
    menu.hidden = true;
    root.append(menu);
    return opener;
  }

  function openMenu(item) {
    closeMenu();
    const staff = isStaff() && Number(item.dataset.user) !== me.id;
    const who = item.dataset.name;
    const act = (label, fn) =>
      el("button", { type: "button", class: "quiet", onclick: async () => {
        const opener = closeMenu();
        try {
          showNotice(await fn());
        } catch (err) {
          showNotice(err.status === 409 ? "You reported this line already." : err.message);
        }
        opener?.focus();
      } }, label);
    const id = item.dataset.id;
    const buttons = [act("Report", async () => {
      await api("POST", `${base}/messages/${id}/reports`, {});
      return "Reported: the moderators will look at it.";
    })];
    if (staff) {
      const userId = Number(item.dataset.user);
      buttons.push(act("Delete", async () => {
        await api("DELETE", `${base}/messages/${id}`);
        return "";
      }));
      for (const [seconds, label] of TIMEOUTS) {
        const b = act(`Timeout ${label}`, async () => {
          await api("POST", `${base}/timeouts`, { user_id: userId, seconds });
          return `${who} is timed out for ${label}.`;
        });
        buttons.push(b);
      }
      const ban = act("Ban", async () => {
        await api("POST", `${base}/bans`, { user_id: userId });
        return `${who} is banned from this chat.`;
      });
      buttons.push(ban);
    }
    menu.replaceChildren(...buttons);
    menu.setAttribute("aria-label", `Actions for ${who}'s line`);
    item.append(menu);
    menu.hidden = false;
    item.querySelector(".line-menu").setAttribute("aria-expanded", "true");
    buttons[0].focus();
  }

  log.addEventListener("click", (event) => {
    const opener = event.target.closest(".line-menu");
    if (!opener) return;
    const item = opener.closest(".line");
    if (menu.parentElement === item) closeMenu();
    else openMenu(item);
  });
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !menu.hidden) closeMenu()?.focus();
  });

  // -- room settings, for the owner, moderators and admins --------------------------------

  function closeSettings() {
    settingsForm.hidden = true;
    settingsToggle.setAttribute("aria-expanded", "false");
  }

  async function openSettings() {
    const current = await api("GET", `${base}/settings`);
    const fields = settingsForm.elements;
    const slow = String(current.slow_mode_s);
    if (![...fields.slow_mode_s.options].some((o) => o.value === slow)) {
      fields.slow_mode_s.append(el("option", { value: slow }, `${slow} s`));
    }
    fields.slow_mode_s.value = slow;
    fields.subscribers_only.checked = current.subscribers_only;
    fields.links_allowed.checked = current.links_allowed;
    fields.banned_terms.value = current.banned_terms.join("\n");
    settingsForm.hidden = false;
    settingsToggle.setAttribute("aria-expanded", "true");
    fields.slow_mode_s.focus();
  }

  settingsToggle.addEventListener("click", async () => {
    if (!settingsForm.hidden) return closeSettings();
    try {
      await openSettings();
    } catch (err) {
      showNotice(`Could not load the chat settings: ${err.message}`);
    }
  });
  settingsForm.querySelector(".chat-settings-cancel").addEventListener("click", () => {
    closeSettings();
    settingsToggle.focus();
  });
  settingsForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = settingsForm.elements;
    const terms = fields.banned_terms.value.split("\n").map((t) => t.trim()).filter(Boolean);
    try {
      await api("PATCH", `${base}/settings`, {
        slow_mode_s: Number(fields.slow_mode_s.value),
        subscribers_only: fields.subscribers_only.checked,
        links_allowed: fields.links_allowed.checked,
        banned_terms: [...new Set(terms)],
      });
      closeSettings();
      settingsToggle.focus();
      showNotice("Chat settings saved.");
    } catch (err) {
      showNotice(err.explain ? err.explain({ banned_terms: "banned terms" }) : err.message);
    }
  });

  // -- the socket ----------------------------------------------------------------------

  // -- the join line ------------------------------------------------------------------
  // A node with more joins than it takes lets them in in turn, before the upgrade, and
  // refuses (503 + Retry-After) a join that would wait too long. A browser's WebSocket
  // cannot read that answer: a socket that closes before it opened asks for the line's
  // state, says "You're in line" and tries again when the server advises, never sooner.

  async function lineState() {
    try {
      const response = await fetch("/api/v1/chat/line", { cache: "no-store" });
      if (!response.ok) return null;
      const state = await response.json();
      const advised = Number(response.headers.get("Retry-After")) || state.retry_after_s || 0;
      return { ...state, retryAfterS: advised };
    } catch {
      return null;
    }
  }

  function about(seconds) {
    if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
    return `${Math.round(seconds / 60)} min`;
  }

  function inLine(state, retryS) {
    const ahead = state.waiting > 0 ? ` (${state.waiting} ahead of you)` : "";
    const when = retryS
      ? `. Joining again in about ${about(retryS)}.`
      : `: about ${about(state.wait_s)}.`;
    show(lineNote, `You're in line to join the chat${ahead}${when}`);
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/${encodeURIComponent(slug)}`);
    const mine = socket;
    let opened = false;
    if (lastId === 0) show(connection, "Connecting…");
    // Still not open after a moment: the node may be letting joins in in turn.
    const waiting = setTimeout(async () => {
      const state = opened ? null : await lineState();
      if (state && !opened && socket === mine && state.waiting > 0) inLine(state, 0);
    }, 1500);
    mine.addEventListener("open", () => {
      opened = true;
      clearTimeout(waiting);
      updateSendBox();
    });
    mine.addEventListener("message", (message) => {
      let events;
      try {
        events = JSON.parse(message.data);
      } catch {
        return;
      }
      for (const event of Array.isArray(events) ? events : [events]) handle(event);
    });
    mine.addEventListener("close", async () => {
      clearTimeout(waiting);
      if (socket !== mine || stopped) return;
      socket = null;
      updateSendBox();
      for (const [key] of sent) {
        sent.delete(key);
        showNotice("The connection dropped before your message was confirmed: send it again.");
      }
      const state = opened ? null : await lineState();
      if (stopped) return;
      if (state && !state.open) {
        // Refused: come back within the window the server advised (its Retry-After is
        // already spread; a little more jitter keeps a page reload from lining up again).
        const delay = Math.max(1000, state.retryAfterS * 1000 * (1 + Math.random() * 0.25));
        inLine(state, delay / 1000);
        show(connection, "");
        setTimeout(connect, delay);
        return;
      }
      // Full jitter: many viewers dropped at once do not all come back at the same moment.
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempts);
      const delay = Math.max(250, Math.random() * ceiling);
      attempts += 1;
      show(lineNote, "");
      show(connection, `Reconnecting in ${Math.ceil(delay / 1000)} s…`);
      setTimeout(connect, delay);
    });
  }

  let stopped = false;
  connect();
  /** Close the socket for good (a page that shows another stream's chat next). */
  return {
    stop() {
      stopped = true;
      clearInterval(ticker);
      socket?.close(1000);
      socket = null;
    },
  };
}
