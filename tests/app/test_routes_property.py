"""Every route in the app's route table, called with generated path segments, query strings
and JSON bodies, as nobody, a viewer, a creator and an admin, answers below 500.

The whole app runs on real PostgreSQL, once with the built-in test payment provider and once
with Stripe (the Stripe-shaped peer in tests/support/stripe_peer.py). Segments mix
the values that broke livecore before (other scripts' digits, ids beyond bigint, a trailing
newline, empty and very long segments) with the ids and slugs that exist, so requests reach
the handlers rather than only the router. Derandomized: the same examples on every run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecore.config import Config
from livecore.store import Database
from tests.conftest import Client, MakeClient, bearer, register
from tests.support.stripe_peer import StripePeer
from tests.tips.test_stripe_tips import stripe_config

_PLACEHOLDER = re.compile(r"\{([^}]+)\}")
ROLES = ("anonymous", "viewer", "creator", "admin")
# Requests that would end the walk's own sessions or its stream, after which it would only
# see 401s and 404s: logging out is done anonymously, deleting never names the stream.
_LOGOUT = ("POST", "/api/v1/auth/logout")
_DELETE_STREAM = ("DELETE", "/api/v1/streams/{slug}")


@dataclass(frozen=True)
class World:
    client: Client
    headers: dict[str, dict[str, str]]
    known: dict[str, str]  # the stand-ins in _KNOWN: what exists
    stream_key: str


@pytest.fixture(params=["test_payments", "stripe"])
async def world(
    request: pytest.FixtureRequest,
    make_client: MakeClient,
    config: Config,
    db: Database,
    stripe_peer: StripePeer,
) -> World:
    """The app with the built-in test payment provider, or with Stripe (the Stripe-shaped
    peer on loopback); three accounts with sessions, the creator's stream and tier. Made
    once, then shared by every example."""
    if request.param == "stripe":
        client = await make_client(stripe=stripe_config(config, stripe_peer).stripe)
    else:
        client = await make_client()
    creator = await register(client, "cara@example.com", creator=True, display_name="Cara")
    viewer = await register(client, "vic@example.com", display_name="Vic")
    admin = await register(client, "root@example.com", display_name="Root")
    await db.pool.execute("UPDATE users SET role = 'admin' WHERE id = $1", admin["user"]["id"])
    client.session.cookie_jar.clear()  # each request says who it is, or is anonymous
    resp = await client.post(
        "/api/v1/streams", json={"slug": "prop", "title": "p"}, headers=bearer(creator["token"])
    )
    assert resp.status == 201
    made = await resp.json()
    tier = await client.post(
        "/api/v1/me/tiers", json={"name": "Fan", "price_minor": 500, "currency": "usd"},
        headers=bearer(creator["token"]),
    )  # fmt: skip
    assert tier.status == 201, await tier.text()
    known = {
        "<creator>": str(creator["user"]["id"]), "<viewer>": str(viewer["user"]["id"]),
        "<stream>": str(made["stream"]["id"]), "<tier>": str((await tier.json())["tier"]["id"]),
    }  # fmt: skip
    return World(
        client,
        {"viewer": bearer(viewer["token"]), "creator": bearer(creator["token"]),
         "admin": bearer(admin["token"]), "anonymous": {}},
        known,
        made["stream_key"],
    )  # fmt: skip


_HOSTILE = (
    "", "0", "1", "-1", "²", "٣", "\uff15", "1\n", "abc-nl\n", "pm_x\n", "acct_x\n",
    "9223372036854775807", "9223372036854775808", "99999999999999999999", "9" * 5000,
    "a" * 300, "..", "%2e%2e", "\x00", "\ud800", "null", "master.m3u8", "index.m3u8",
    "seg-0.m4s", "part-0-0.m4s", "part-0-²³.m4s", "init-0.mp4", "vod.m3u8", "thumb.jpg",
)  # fmt: skip
_FIELDS = (
    "amount_minor", "currency", "message", "payment_method", "user_id", "seconds", "reason",
    "slug", "title", "visibility", "email", "password", "display_name", "creator", "action",
    "name", "price_minor", "platform_fee_bps", "stripe_account_id", "return_path", "token",
    "current_password", "new_password", "slow_mode_s", "subscribers_only", "links_allowed",
    "max_length", "banned_terms",
)  # fmt: skip
_QUERY_NAMES = ("state", "owner", "status", "lane", "from", "to", "format", "token",
                "_HLS_msn", "_HLS_part", "_HLS_skip")  # fmt: skip


# Stand-ins for what exists, resolved against the test's world when the request is made
# (examples are drawn before the app exists).
_KNOWN = ("<creator>", "<viewer>", "<stream>", "<tier>", "prop", "source", "me")
_segment = st.one_of(
    st.just("<fit>"),  # what exists for the placeholder it lands in (the stream for {slug})
    st.just("<fit>"),  # twice: half of the requests reach past the lookups
    st.sampled_from(_KNOWN),
    st.sampled_from(_HOSTILE),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=30),
)


# Values a handler accepts somewhere, so that some bodies get past validation.
_PLAUSIBLE = (
    "usd", "eur", "public", "subscribers", "prop", "resolve", "dismiss", "Fan", "hello",
    "vic@example.com", "correct horse battery", "/watch/prop", "pm_card_visa", "acct_123",
    1, 2, 3, 60, 100, 500, 1000, 10_000,  # users 1-3 are the walk's own
)  # fmt: skip
# Whole bodies that some route accepts, each then changed in up to two fields.
_GOOD_BODIES = (
    {"amount_minor": 500, "currency": "usd", "message": "hi"},
    {"user_id": 2, "seconds": 60, "reason": "r"},
    {"slug": "prop2", "title": "t", "visibility": "public"},
    {"name": "Tier", "price_minor": 500, "currency": "usd"},
    {"email": "new@example.com", "password": "correct horse battery", "display_name": "N"},
    {"action": "dismiss"},
    {"reason": "spam"},
    {"platform_fee_bps": 100, "stripe_account_id": "acct_123"},
    {"slow_mode_s": 5, "banned_terms": ["x"], "max_length": 100},
    {"currency": "usd"},
)
_scalar = st.one_of(
    st.none(), st.booleans(), st.sampled_from(_HOSTILE), st.sampled_from(_PLAUSIBLE),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2**63 - 1, 2**63, -(2**63) - 1, 1.5, float("inf"), float("nan")]),
    st.text(max_size=20),
)  # fmt: skip
_value = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)  # fmt: skip
_body = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(_FIELDS), _value, max_size=6),
    st.builds(
        lambda good, changed: {**good, **changed},
        st.sampled_from(_GOOD_BODIES),
        st.dictionaries(st.sampled_from(_FIELDS), _value, max_size=2),
    ),
    _value,
)


@dataclass(frozen=True)
class Call:
    route: int  # an index into the sorted route table, modulo its length
    role: str
    segments: list[str]  # for the route's placeholders, in order
    query: dict[str, str]
    body: Any
    raw: str | None  # a body sent as it is (not JSON), with its own content type
    headers: dict[str, str]  # added to (or replacing) the role's


# Header values that clients, proxies and attackers send (latin-1: what HTTP carries).
_HEADERS = st.dictionaries(
    st.sampled_from(["Authorization", "Cookie", "Range", "If-None-Match", "If-Range",
                     "Origin", "X-Forwarded-For", "X-Request-Id", "Idempotency-Key",
                     "Content-Type", "Accept", "X-CSRF-Token", "Content-Encoding"]),
    st.one_of(
        st.sampled_from(["Bearer ", "Bearer x", "Bearer lcs_\xb2", "Basic Og==", "bytes=0-",
                         "bytes=-1", "bytes=\xb2-", "bytes=99999999999999999999-",
                         "bytes=5-1", "livecore_session=lcs_x; livecore_csrf=y", "*",
                         "http://evil.example", "1.2.3.4, ::1, x", "a" * 4000, "",
                         "application/json; charset=latin-1", "multipart/form-data", "gzip",
                         "deflate", "br", "zstd", "identity"]),
        st.text(st.sampled_from([chr(c) for c in (*range(0x20, 0x7F), *range(0xA0, 0x100))]),
                max_size=40),
    ),
    max_size=2,
)  # fmt: skip


_calls = st.builds(
    Call,
    route=st.integers(min_value=0, max_value=10_000),
    role=st.sampled_from(ROLES),
    segments=st.lists(_segment, min_size=3, max_size=3),
    query=st.dictionaries(st.sampled_from(_QUERY_NAMES), _segment, max_size=3),
    body=_body,
    raw=st.one_of(
        st.none(), st.none(), st.none(), st.none(),
        st.sampled_from(["v=0\r\n", "{", "not json", "\x00", "[" * 2000]),
    ),
    headers=st.one_of(st.just({}), st.just({}), _HEADERS),  # a third of the calls
)  # fmt: skip


def _routes(client: Client) -> list[tuple[str, str]]:
    routes = set()
    app = client.app
    assert app is not None
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        if template and route.method != "HEAD":  # aiohttp answers HEAD as GET
            routes.add((route.method, template))
    return sorted(routes)


# What exists, by placeholder name, for "<fit>".
_FIT = {"slug": "prop", "stream": "prop", "rendition": "source", "file": "index.m3u8",
        "tail": "prop/source/index.m3u8", "name": "watch.js", "user_id": "<viewer>",
        "id": "<tier>", "broadcast": "<stream>"}  # fmt: skip


def _resolve(world: World, value: str, name: str = "") -> str:
    if value == "<fit>":
        value = _FIT.get(name, "1")
    return world.known.get(value, value)


async def _send(world: World, routes: list[tuple[str, str]], call: Call) -> int:
    method, template = routes[call.route % len(routes)]
    values = iter(call.segments)

    def segment(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        return quote(_resolve(world, next(values), name), safe="", errors="replace")

    path = _PLACEHOLDER.sub(segment, template)
    if (method, template) == _DELETE_STREAM:
        path = path.replace("/prop", "/not-prop")
    role = "anonymous" if (method, template) == _LOGOUT else call.role
    headers = dict(world.headers[role])
    if template.startswith(("/whip/", "/whep/")) and role == "creator":
        headers["Authorization"] = f"Bearer {world.stream_key}"  # the stream's real key
    query = {k: _resolve(world, v) for k, v in call.query.items()}
    kwargs: dict[str, Any] = {"headers": headers, "params": query}
    if call.raw is not None:
        kwargs["data"] = call.raw.encode("utf-8", "replace")
        headers["Content-Type"] = "application/sdp" if call.raw.startswith("v=") else "text/plain"
    elif call.body is not None:
        kwargs["data"] = json.dumps(call.body)
        headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = "prop-key"
    headers.update(call.headers)
    # Bounded: a request that hangs is a failure of its own, not a stuck test run.
    async with asyncio.timeout(15):
        resp = await world.client.request(method, path, **kwargs)
        await resp.read()
    if os.environ.get("LIVECORE_PROP_LOG"):
        print(resp.status, method, path[:100], call.role)
    return resp.status


@settings(
    max_examples=1000, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(call=_calls)
async def test_no_route_answers_5xx(world: World, call: Call) -> None:
    status = await _send(world, _routes(world.client), call)
    assert status < 500, call
