"""The web pages and their static files: `/`, `/studio`, `/studio/moderation`, `/watch/{slug}`,
the account pages (`/login`, `/signup`, `/forgot-password`, `/reset-password`, `/account`),
`/subscriptions`, the creator's `/studio/money`, the admin console `/admin`, `/static/...`.

The pages are static HTML; everything dynamic is done by their JavaScript modules through
the public API, so nothing here reads the database or imports other livecore packages.
hls.js and Chart.js are served from the npm install in `web/node_modules` (run `npm ci --prefix
web`).

Caching: file names are not versioned (no build step), so browsers revalidate every file
(`no-cache` with ETag / Last-Modified answers 304 when unchanged). HTML pages get a
Content-Security-Policy that allows only this origin: scripts from files, never inline; the
watch page also allows Stripe.js when Stripe takes the payments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Final

from aiohttp import web

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
# The npm project beside the package in a source checkout (`web/package.json`).
NODE_MODULES: Final = Path(__file__).resolve().parents[2] / "web" / "node_modules"
HLS_JS: Final = Path("hls.js") / "dist" / "hls.min.js"
# Chart.js's UMD build: one self-contained classic script that defines `window.Chart` (its ES
# module build imports a bare package name, which a browser resolves only with an import map,
# and an import map is an inline script, which the CSP refuses).
CHART_JS: Final = Path("chart.js") / "dist" / "chart.umd.min.js"

# Stripe.js, the one script from elsewhere: loaded by the watch page to confirm a tip with
# the Payment Element, and allowed there only when Stripe takes the payments. Its frames,
# API calls and card-brand images come from Stripe's own hosts
# (https://docs.stripe.com/security/guide#content-security-policy).
STRIPE_JS: Final = "https://js.stripe.com/v3/"
_STRIPE_SOURCES: Final[Mapping[str, str]] = {
    "script-src": "https://js.stripe.com https://*.js.stripe.com",
    "frame-src": "https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com",
    "connect-src": "https://api.stripe.com",
    "img-src": "https://*.stripe.com",
}
_DIRECTIVES: Final[Mapping[str, str]] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    # hls.js plays through Media Source Extensions: the video element gets a blob: URL,
    # and its transmuxer runs in a worker made from a blob: URL.
    "media-src": "'self' blob:",
    "worker-src": "'self' blob:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def content_security_policy(*, stripe_js: bool = False) -> str:
    """The pages' policy: this origin only; with `stripe_js`, Stripe.js and its hosts too."""
    directives = dict(_DIRECTIVES)
    if stripe_js:
        for name, sources in _STRIPE_SOURCES.items():
            directives[name] = f"{directives.get(name, '')} {sources}".strip()
    return "; ".join(f"{name} {sources}" for name, sources in directives.items())


CSP: Final = content_security_policy()
PAGE_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self)",
}
STATIC_CACHE: Final = "public, no-cache"
# Every static file, by name, with its type: anything else is a 404.
STATIC_FILES: Final[Mapping[str, str]] = {
    "app.css": "text/css; charset=utf-8",
    "admin.css": "text/css; charset=utf-8",
    "admin.js": "text/javascript; charset=utf-8",
    "admin-audit.js": "text/javascript; charset=utf-8",
    "admin-live.js": "text/javascript; charset=utf-8",
    "admin-money.js": "text/javascript; charset=utf-8",
    "admin-page.js": "text/javascript; charset=utf-8",
    "admin-reports.js": "text/javascript; charset=utf-8",
    "admin-users.js": "text/javascript; charset=utf-8",
    "account.js": "text/javascript; charset=utf-8",
    "amounts.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "chat.js": "text/javascript; charset=utf-8",
    "money.css": "text/css; charset=utf-8",
    "money.js": "text/javascript; charset=utf-8",
    "offer.js": "text/javascript; charset=utf-8",
    "header.js": "text/javascript; charset=utf-8",
    "home.css": "text/css; charset=utf-8",
    "home.js": "text/javascript; charset=utf-8",
    "lowlatency.js": "text/javascript; charset=utf-8",
    "moderation.js": "text/javascript; charset=utf-8",
    "notifications.js": "text/javascript; charset=utf-8",
    "studio.css": "text/css; charset=utf-8",
    "player.js": "text/javascript; charset=utf-8",
    "report.js": "text/javascript; charset=utf-8",
    "studio.js": "text/javascript; charset=utf-8",
    "subscribe.js": "text/javascript; charset=utf-8",
    "subscriptions.js": "text/javascript; charset=utf-8",
    "tip.js": "text/javascript; charset=utf-8",
    "twofactor.js": "text/javascript; charset=utf-8",
    "watch.js": "text/javascript; charset=utf-8",
    "whep.js": "text/javascript; charset=utf-8",
    "whip.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

_NODE_MODULES = web.AppKey("web_node_modules", Path)


def setup(
    app: web.Application, *, node_modules: Path = NODE_MODULES, stripe_js: bool = False
) -> None:
    """Add the page and static routes; `node_modules` is where npm installed hls.js;
    `stripe_js`: Stripe takes the payments, so the watch page may load Stripe.js."""
    app[_NODE_MODULES] = node_modules
    app.router.add_get("/", _page("index.html"))
    app.router.add_get("/studio", _page("studio.html"))
    app.router.add_get("/studio/money", _page("money.html"))
    app.router.add_get("/studio/moderation", _page("moderation.html"))
    app.router.add_get("/admin", _page("admin.html"))
    watch_csp = content_security_policy(stripe_js=stripe_js)
    app.router.add_get("/watch/{slug}", _page("watch.html", csp=watch_csp))
    pages = ("login", "signup", "forgot-password", "reset-password", "account", "subscriptions")
    for name in pages:
        app.router.add_get(f"/{name}", _page(f"{name}.html"))
    app.router.add_get("/static/vendor/hls.min.js", get_hls_js)
    app.router.add_get("/static/vendor/chart.umd.min.js", get_chart_js)
    app.router.add_get("/static/{name}", get_static)


def _page(name: str, csp: str = CSP) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    path = STATIC_DIR / name
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        **PAGE_HEADERS,
        "Content-Security-Policy": csp,
    }

    async def get_page(request: web.Request) -> web.StreamResponse:
        return await _file_response(request, path, headers)

    return get_page


def _not_found(message: str) -> web.Response:
    # The API's error shape, built here because web/ imports nothing from livecore.
    body = {"error": {"code": "not_found", "message": message}}
    return web.json_response(body, status=404, headers={"Cache-Control": "no-store"})


async def get_static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        return _not_found("no such file")
    headers = {
        "Content-Type": content_type,
        "Cache-Control": STATIC_CACHE,
        "X-Content-Type-Options": "nosniff",
    }
    return await _file_response(request, STATIC_DIR / name, headers)


async def get_hls_js(request: web.Request) -> web.StreamResponse:
    """hls.js as npm installed it; a clear 404 when `npm ci --prefix web` was not run."""
    return await _vendor(request, HLS_JS, "hls.js")


async def get_chart_js(request: web.Request) -> web.StreamResponse:
    """Chart.js as npm installed it, for the Money page's charts."""
    return await _vendor(request, CHART_JS, "Chart.js")


async def _vendor(request: web.Request, relative: Path, name: str) -> web.StreamResponse:
    path = request.app[_NODE_MODULES] / relative
    if not await asyncio.to_thread(path.is_file):
        return _not_found(f"{name} is not installed on this server: run `npm ci --prefix web`")
    headers = {
        "Content-Type": "text/javascript; charset=utf-8",
        "Cache-Control": STATIC_CACHE,
        "X-Content-Type-Options": "nosniff",
    }
    return await _file_response(request, path, headers)


@dataclass(frozen=True, slots=True)
class _Loaded:
    stamp: tuple[int, int]  # (mtime in ns, size): a changed file is read again
    body: bytes
    etag: str
    last_modified: str


# Every file this module serves, read whole: pages and scripts are small, and the largest
# (hls.js) is under a megabyte. Not web.FileResponse: a browser that drops a request
# mid-transfer (it often does for the favicon) left that response's file open until the
# garbage collector found it.
_LOADED: dict[Path, _Loaded] = {}


async def _file_response(
    request: web.Request, path: Path, headers: Mapping[str, str]
) -> web.StreamResponse:
    """The file with an ETag and Last-Modified; 304 when the browser's copy is current."""
    loaded = await asyncio.to_thread(_load, path)
    if loaded is None:
        return _not_found("no such file")
    answer = {**headers, "ETag": loaded.etag, "Last-Modified": loaded.last_modified}
    if _current(request.headers.get("If-None-Match", ""), loaded.etag):
        return web.Response(status=304, headers=answer)
    return web.Response(body=loaded.body, headers=answer)


def _load(path: Path) -> _Loaded | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _LOADED.get(path)
    if cached is not None and cached.stamp == stamp:
        return cached
    loaded = _Loaded(
        stamp,
        path.read_bytes(),
        f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"',
        formatdate(stat.st_mtime, usegmt=True),
    )
    _LOADED[path] = loaded
    return loaded


def _current(if_none_match: str, etag: str) -> bool:
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags
