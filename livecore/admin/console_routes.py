"""What the admin console reads: every live stream with its viewers and ingest figures
(`GET /api/v1/admin/live`), one account with its streams, tips and money settings
(`GET /api/v1/admin/users/{id}`), and the platform's audit log (`GET /api/v1/admin/audit`).

The audit log is filtered by `actor` (a user id, or part of an e-mail or display name),
`action` (`user.suspend`, or a family ending in a dot: `stream.`), `target` (`user`, or
`user:12`), `from` and `to` (ISO 8601 times with their offset; `to` is exclusive); newest
first, `limit` at a time (100; at most 500), `before` an entry id for the page after;
`format=csv` exports every matching entry (up to `EXPORT_MAX`, newest first). Admins only.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from datetime import datetime
from typing import Any, Final

from aiohttp import web

from livecore.admin.routes import admin_user, int_id, suspension_json
from livecore.appkeys import AUDIT, DB, INGEST, STREAM_RECORDS, USERS, VIEWER_COUNTS
from livecore.auth.views import user_json
from livecore.errors import Invalid, NotFound
from livecore.jsonbody import iso
from livecore.store.admin_users import AdminUsers
from livecore.store.audit import AuditEntry, AuditFilter
from livecore.store.creator_settings import CreatorSettings
from livecore.store.suspensions import Suspensions
from livecore.store.twofactor import TwoFactorSecrets
from livecore.streams.health import IngestReport
from livecore.streams.routes import ingest_json, stream_json

# More live streams than any console shows at once; the rest would wait for the next look.
LIVE_MAX: Final = 1000
PAGE_DEFAULT: Final = 100
PAGE_MAX: Final = 500
EXPORT_MAX: Final = 10_000
_ACTION: Final = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*\.?")
_TARGET: Final = re.compile(r"([a-z_]{1,32})(?::(.{1,64}))?", re.DOTALL)
_CSV_COLUMNS: Final = ("id", "at", "actor_id", "actor_name", "action", "target_type",
                       "target_id", "user_name", "details")  # fmt: skip
# A spreadsheet runs a cell that starts with one of these as a formula: such text (a reason
# someone typed) is written with a leading apostrophe, which spreadsheets show as text.
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/live", get_live)
    app.router.add_get("/api/v1/admin/users/{user_id}", get_user)
    app.router.add_get("/api/v1/admin/audit", get_audit)


async def get_live(request: web.Request) -> web.Response:
    """Every live stream, most recently started first, with its viewers now and its ingest
    figures (null when another node ingests it); read fresh, never from the public listing's
    cache. One query and one viewer-count lookup for the whole list."""
    await admin_user(request)
    app = request.app
    streams = await app[STREAM_RECORDS].find(state="live", limit=LIVE_MAX)
    ids = [s.id for s in streams]
    viewer_counts = app.get(VIEWER_COUNTS)
    counts = await viewer_counts(ids) if ids and viewer_counts is not None else {}
    probe = app.get(INGEST)
    ingest: dict[int, IngestReport | None] = {}
    if probe is not None:
        reports = await asyncio.gather(*(probe.report(i) for i in ids))
        ingest = dict(zip(ids, reports, strict=True))
    listed = [
        {**stream_json(s), "viewers": counts.get(s.id, 0), "ingest": ingest_json(ingest.get(s.id))}
        for s in streams
    ]
    return web.json_response({"streams": listed})


async def get_user(request: web.Request) -> web.Response:
    """One account as the console shows it: role, suspension, two-factor state, its streams,
    its newest tips given or received, and (for creators) its money settings."""
    await admin_user(request)
    user_id = int_id(request, "user_id", "user")
    db = request.app[DB]
    user = await request.app[USERS].get(user_id)
    if user is None:
        raise NotFound("no such user")
    found = AdminUsers(db)
    money = await CreatorSettings(db).get(user_id) if user.role != "viewer" else None
    return web.json_response({
        "user": {
            **user_json(user),
            "suspension": suspension_json(await Suspensions(db).active(user_id)),
            "two_factor": await TwoFactorSecrets(db).enabled(user_id),
        },
        "streams": [
            {"id": s.id, "slug": s.slug, "title": s.title, "state": s.state,
             "started_at": iso(s.started_at)}
            for s in await found.streams_of(user_id)
        ],
        "tips": [
            {"id": t.id, "amount_minor": t.amount_minor, "currency": t.currency,
             "status": t.status, "created_at": t.created_at.isoformat(),
             "from": {"id": t.viewer_id, "display_name": t.viewer_name},
             "to": {"id": t.creator_id, "display_name": t.creator_name},
             "stream": t.stream_slug}
            for t in await found.tips_of(user_id)
        ],
        "money": None if money is None else {
            "platform_fee_bps": money.platform_fee_bps,
            "stripe_account_id": money.stripe_account_id,
        },
    })  # fmt: skip


def _time(raw: str) -> tuple[datetime | None, str | None]:
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        return None, "must be an ISO 8601 time"
    if when.tzinfo is None:
        return None, "must carry its UTC offset"
    return when, None


def _filter(query: Any) -> tuple[AuditFilter, int, str]:
    """The filters, page size and format from the query; 422 names every bad field."""
    problems: dict[str, str] = {}
    found: dict[str, Any] = {}
    if actor := query.get("actor", "").strip():
        if actor.isdigit() and len(actor) < 19:
            found["actor_id"] = int(actor)
        elif len(actor) > 254:
            problems["actor"] = "must be a user id or at most 254 characters of a name"
        else:
            found["actor_text"] = actor
    if action := query.get("action", "").strip():
        if len(action) > 64 or not _ACTION.fullmatch(action):
            problems["action"] = "must be an action (user.suspend) or a family (user.)"
        else:
            found["action_prefix" if action.endswith(".") else "action"] = action
    if target := query.get("target", "").strip():
        if (m := _TARGET.fullmatch(target)) is None:
            problems["target"] = "must be a target kind (user) or kind:id (user:12)"
        else:
            found["target_type"], found["target_id"] = m.group(1), m.group(2)
    for name, key in (("from", "since"), ("to", "until")):
        if raw := query.get(name, "").strip():
            found[key], problem = _time(raw)
            if problem is not None:
                problems[name] = problem
    since, until = found.get("since"), found.get("until")
    if since is not None and until is not None and since >= until:
        problems["from"] = "must be before to"
    if (before := query.get("before")) is not None:
        if not (before.isdigit() and 0 < len(before) < 19):
            problems["before"] = "must be an entry id"
        else:
            found["before_id"] = int(before)
    limit = PAGE_DEFAULT
    if (raw_limit := query.get("limit")) is not None:
        if not (raw_limit.isdigit() and 1 <= int(raw_limit[:4]) <= PAGE_MAX):
            problems["limit"] = f"must be a number from 1 to {PAGE_MAX}"
        else:
            limit = int(raw_limit)
    kind = query.get("format", "json")
    if kind not in ("json", "csv"):
        problems["format"] = "must be json or csv"
    if problems:
        raise Invalid("; ".join(f"{k} {v}" for k, v in problems.items()), fields=problems)
    return AuditFilter(**found), limit, kind


def entry_json(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id, "at": e.at.isoformat(), "action": e.action,
        "actor": {"id": e.actor_id, "display_name": e.actor_name}
        if e.actor_id is not None else None,
        "target_type": e.target_type, "target_id": e.target_id,
        "details": e.details, "user_name": e.user_name,
    }  # fmt: skip


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


async def get_audit(request: web.Request) -> web.Response:
    """The audit log, filtered, newest first; a page of JSON or every match as CSV."""
    await admin_user(request)
    where, limit, kind = _filter(request.query)
    log = request.app[AUDIT]
    if kind == "json":
        entries = await log.search(where, limit + 1)
        more = len(entries) > limit
        entries = entries[:limit]
        body = {"entries": [entry_json(e) for e in entries],
                "next_before": entries[-1].id if more else None}  # fmt: skip
        return web.json_response(body)
    entries = await log.search(where, EXPORT_MAX)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_CSV_COLUMNS)
    for e in entries:
        row = (e.id, e.at.isoformat(), e.actor_id, e.actor_name, e.action, e.target_type,
               e.target_id, e.user_name, json.dumps(e.details, sort_keys=True))  # fmt: skip
        writer.writerow([_cell(v) for v in row])
    return web.Response(
        text=out.getvalue(), content_type="text/csv", charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"',
                 "Cache-Control": "no-store"},
    )  # fmt: skip
