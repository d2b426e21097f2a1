"""The pages and static files over plain HTTP: types, caching, CSP, hls.js and Chart.js from
npm."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from livecore.config import Config
from livecore.web import routes as web_routes
from livecore.web.routes import CHART_JS, HLS_JS, NODE_MODULES, STATIC_DIR, STATIC_FILES
from tests.conftest import Client, MakeClient

PAGES = (
    "/", "/studio", "/studio/moderation", "/watch/some-show", "/login", "/signup",
    "/forgot-password", "/reset-password", "/account", "/subscriptions", "/studio/money",
)  # fmt: skip
_STATIC_REF = re.compile(r"""(?:src|href)="/static/([^"]+)\"""")
_IMPORT = re.compile(r"""from "\./([^"]+)\"""")


@pytest.mark.parametrize("path", PAGES)
async def test_pages_are_html_with_a_self_only_csp(client: Client, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.content_type == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["media-src"] == "'self' blob:"
    assert "unsafe" not in csp
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    html = await resp.text()
    # No inline script: every <script> names its file.
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(' src="/static/' in tag for tag in scripts)


def _directives(csp: str) -> dict[str, str]:
    return dict(d.strip().split(" ", 1) for d in csp.split(";"))


async def test_the_watch_page_allows_stripe_js_only_when_stripe_takes_the_payments(
    make_client: MakeClient, config: Config
) -> None:
    stripe = replace(config.stripe, secret_key="sk_test_livecore", publishable_key="pk_test_x")
    with_stripe = await make_client(stripe=stripe)
    watch = _directives((await with_stripe.get("/watch/a-show")).headers["Content-Security-Policy"])
    assert watch["script-src"] == "'self' https://js.stripe.com https://*.js.stripe.com"
    assert "https://hooks.stripe.com" in watch["frame-src"]
    assert watch["connect-src"] == "'self' https://api.stripe.com"
    assert "unsafe" not in " ".join(watch.values())
    # Only the page that takes cards loads it; the others keep this origin only.
    for path in ("/", "/subscriptions", "/account", "/studio"):
        csp = _directives((await with_stripe.get(path)).headers["Content-Security-Policy"])
        assert csp["script-src"] == "'self'", path
        assert "frame-src" not in csp, path
    # With the test provider, the watch page loads nothing from elsewhere either.
    without = await make_client()
    csp = _directives((await without.get("/watch/a-show")).headers["Content-Security-Policy"])
    assert csp["script-src"] == "'self'" and "frame-src" not in csp


async def test_static_files_are_served_with_their_types_and_revalidated(client: Client) -> None:
    resp = await client.get("/static/studio.js")
    assert resp.status == 200
    assert resp.content_type == "text/javascript"
    assert resp.headers["Cache-Control"] == "public, no-cache"
    assert "export" in (text := await resp.text()) or "import" in text
    etag = resp.headers["ETag"]
    again = await client.get("/static/studio.js", headers={"If-None-Match": etag})
    assert again.status == 304
    css = await client.get("/static/app.css")
    assert css.status == 200 and css.content_type == "text/css"


@pytest.mark.parametrize(
    "path", ["/static/nope.js", "/static/index.html", "/static/..%2Froutes.py", "/static/"]
)
async def test_unknown_static_files_are_404(client: Client, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 404


def test_every_file_the_pages_load_is_listed_and_exists() -> None:
    referenced: set[str] = set()
    pages = (
        "index.html", "studio.html", "moderation.html", "watch.html", "login.html",
        "account.html", "subscriptions.html", "money.html", "admin.html",
    )  # fmt: skip
    for page in pages:
        referenced |= set(_STATIC_REF.findall((STATIC_DIR / page).read_text()))
    for name in STATIC_FILES:
        if name.endswith(".js"):
            referenced |= set(_IMPORT.findall((STATIC_DIR / name).read_text()))
    referenced -= {"vendor/hls.min.js", "vendor/chart.umd.min.js"}  # from npm, tested below
    assert referenced <= set(STATIC_FILES)
    assert all((STATIC_DIR / name).is_file() for name in STATIC_FILES)


def test_the_watch_pages_own_scripts_and_styles_stay_under_150_kb() -> None:
    """hls.js (from npm) aside, everything /watch loads, imports followed."""
    todo = set(_STATIC_REF.findall((STATIC_DIR / "watch.html").read_text()))
    todo.discard("vendor/hls.min.js")
    loaded: set[str] = set()
    while todo:
        name = todo.pop()
        loaded.add(name)
        if name.endswith(".js"):
            todo |= set(_IMPORT.findall((STATIC_DIR / name).read_text())) - loaded
    assert {"watch.js", "chat.js", "header.js", "api.js", "app.css"} <= loaded
    size = sum((STATIC_DIR / name).stat().st_size for name in loaded)
    assert size <= 150 * 1024, (size, sorted(loaded))


@pytest.mark.skipif(
    not (NODE_MODULES / HLS_JS).is_file(), reason="hls.js not installed: npm ci --prefix web"
)
async def test_hls_js_is_served_from_the_npm_install(client: Client) -> None:
    resp = await client.get("/static/vendor/hls.min.js")
    assert resp.status == 200
    assert resp.content_type == "text/javascript"
    assert "Hls" in await resp.text()


async def test_missing_hls_js_is_a_clear_404(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    app = web.Application()
    web_routes.setup(app, node_modules=tmp_path)
    client = await aiohttp_client(app)
    resp = await client.get("/static/vendor/hls.min.js")
    assert resp.status == 404
    body = await resp.json()
    assert body["error"]["code"] == "not_found"
    assert "npm ci --prefix web" in body["error"]["message"]


@pytest.mark.skipif(
    not (NODE_MODULES / CHART_JS).is_file(), reason="Chart.js not installed: npm ci --prefix web"
)
async def test_chart_js_is_served_from_the_npm_install(client: Client) -> None:
    resp = await client.get("/static/vendor/chart.umd.min.js")
    assert resp.status == 200
    assert resp.content_type == "text/javascript"
    assert resp.headers["Cache-Control"] == "public, no-cache"
    assert "Chart.js v4" in await resp.text()


async def test_missing_chart_js_is_a_clear_404(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    app = web.Application()
    web_routes.setup(app, node_modules=tmp_path)
    client = await aiohttp_client(app)
    resp = await client.get("/static/vendor/chart.umd.min.js")
    assert resp.status == 404
    assert "Chart.js is not installed" in (await resp.json())["error"]["message"]
