// Helpers shared by the pages: JSON API calls that surface the server's own error message.

export const CSRF_COOKIE = "livecore_csrf";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** An error answer: `message` is the server's {"error": {"message"}} when it sent one. */
export class ApiError extends Error {
  constructor(status, code, message, fields = {}, retryAfterS = 0) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.fields = fields; // invalid input: field name -> what is wrong with it
    this.retryAfterS = retryAfterS;
  }

  /** In words: each invalid field named ("Password must be at least 10 characters."). */
  explain(labels = {}) {
    const parts = Object.entries(this.fields).map(([name, problem]) => {
      const label = labels[name] || name.replaceAll("_", " ");
      return `${label[0].toUpperCase()}${label.slice(1)} ${problem}.`;
    });
    return parts.length ? parts.join(" ") : this.message;
  }
}

export function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return "";
}

/** Turn a failed response into an ApiError carrying the server's message. */
export async function errorFrom(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  let fields = {};
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      fields = body.error.fields || {};
    }
  } catch {
    // Not JSON (a proxy's error page): keep the status line.
  }
  const retryAfterS = Number(response.headers.get("Retry-After")) || 0;
  return new ApiError(response.status, code, message, fields, retryAfterS);
}

/**
 * Call the JSON API with the session cookie; writes echo the CSRF cookie in X-CSRF-Token.
 * `extraHeaders`: more request headers (an Idempotency-Key).
 */
export async function api(method, path, body, extraHeaders = {}) {
  const headers = { Accept: "application/json", ...extraHeaders };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (!SAFE_METHODS.has(method)) {
    const csrf = cookie(CSRF_COOKIE);
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await errorFrom(response);
  return response.status === 204 ? null : response.json();
}

/** Create an element: el("a", {href: "/"}, "text", child). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/** Show `text` in `node`, or hide the node when text is empty. */
export function show(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

/** "5 Dec 2026, 08:12 · 12 min 3 s": when a recording started, and how long it is. */
export function recordingLabel(recording) {
  const when = new Date(recording.started_at).toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "short",
  });
  const ms = Date.parse(recording.ended_at) - Date.parse(recording.started_at);
  const seconds = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${when} · ${h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`}`;
}
