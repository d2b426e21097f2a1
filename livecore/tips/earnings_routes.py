"""Statements: GET /api/v1/me/statement (a creator's earnings by day) and
GET /api/v1/admin/revenue (the platform's revenue by day), as JSON or CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from livecore.appkeys import DB
from livecore.auth.requests import require_user
from livecore.errors import Forbidden, Invalid
from livecore.store.earnings import Earnings, RevenueDay, StatementDay, as_row

MAX_SPAN_DAYS = 366
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DEFAULT_SPAN_DAYS = 30


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/me/statement", get_statement)
    app.router.add_get("/api/v1/admin/revenue", get_revenue)


def _period(request: web.Request) -> tuple[date, date, str]:
    """`from`, `to` (inclusive, UTC days) and `format` from the query; 422 names the field."""
    problems: dict[str, str] = {}
    today = datetime.now(UTC).date()
    days: dict[str, date] = {}
    for name, default in (("to", today), ("from", None)):
        raw = request.query.get(name)
        if raw is None:
            if default is not None:
                days[name] = default
            continue
        try:
            # fromisoformat also takes 20250310 and 2025-W11-1: only the one form is documented.
            if not _DAY.fullmatch(raw):
                raise ValueError(raw)
            days[name] = date.fromisoformat(raw)
        except ValueError:
            problems[name] = "must be a date, YYYY-MM-DD"
            continue
        if days[name] == date.max:  # the period ends at the next midnight: there is none
            problems[name] = f"must be before {date.max.isoformat()}"
    end = days.get("to", today)
    start = days.get("from", end - timedelta(days=DEFAULT_SPAN_DAYS - 1))
    kind = request.query.get("format", "json")
    if kind not in ("json", "csv"):
        problems["format"] = "must be json or csv"
    if not problems and start > end:
        problems["from"] = "must not be after to"
    if not problems and (end - start).days + 1 > MAX_SPAN_DAYS:
        problems["to"] = f"the period may span at most {MAX_SPAN_DAYS} days"
    if problems:
        raise Invalid("; ".join(f"{k} {v}" for k, v in problems.items()), fields=problems)
    return start, end, kind


def _totals(days: Sequence[StatementDay | RevenueDay]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for day in days:
        row = as_row(day)
        into = totals.setdefault(day.currency, {})
        for key, value in row.items():
            if isinstance(value, int):
                into[key] = into.get(key, 0) + value
    return totals


def _answer(
    name: str, start: date, end: date, kind: str, days: Sequence[StatementDay | RevenueDay]
) -> web.Response:
    rows = [as_row(d) | {"day": d.day.isoformat()} for d in days]
    if kind == "json":
        body: dict[str, Any] = {"from": start.isoformat(), "to": end.isoformat(),
                                "days": rows, "totals": _totals(days)}  # fmt: skip
        return web.json_response(body)
    out = io.StringIO()
    columns = list(rows[0] if rows else _empty(name))
    writer = csv.writer(out)
    writer.writerow([c if c in ("day", "currency") else f"{c}_minor" for c in columns])
    for row in rows:
        writer.writerow([row[c] for c in columns])
    filename = f"{name}-{start.isoformat()}-{end.isoformat()}.csv"
    return web.Response(
        text=out.getvalue(), content_type="text/csv", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )  # fmt: skip


def _empty(name: str) -> dict[str, Any]:
    blank = date(2000, 1, 1)
    return as_row(StatementDay(blank, "") if name == "statement" else RevenueDay(blank, ""))


async def get_statement(request: web.Request) -> web.Response:
    """The logged-in creator's earnings by day and currency."""
    principal = await require_user(request)
    start, end, kind = _period(request)
    days = await Earnings(request.app[DB]).creator_days(principal.user.id, start, end)
    return _answer("statement", start, end, kind, days)


async def get_revenue(request: web.Request) -> web.Response:
    """The platform's revenue by day and currency (admins)."""
    principal = await require_user(request)
    if principal.user.role != "admin":
        raise Forbidden("only admins may read the platform's revenue")
    start, end, kind = _period(request)
    days = await Earnings(request.app[DB]).platform_days(start, end)
    return _answer("revenue", start, end, kind, days)
