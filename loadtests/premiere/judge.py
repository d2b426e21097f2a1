"""The evening judged: figures from every series, and each service objective passed or not.

A run whose load generator was saturated measures the generator, not livecore: it is marked
invalid (and fails) rather than reported as livecore's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from loadtests.premiere.scenario import Scenario

# A generator process busier than this share of a core, for more than SATURATED_SHARE of
# its seconds, was saturated.
BUSY_LIMIT = 0.9
SATURATED_SHARE = 0.2
# Errors this soon after a fault are the fault's, not the server's.
FAULT_WINDOW_S = 20.0


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    value: float
    limit: float
    passed: bool
    text: str


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def figures(s: Scenario, ev: dict[str, Any]) -> dict[str, Any]:
    gens = ev["generators"]
    viewers = sum(g["viewers"] for g in gens)
    ever = sum(g["ever_joined"] for g in gens)
    chat = [ms for g in gens for values in g["chat_ms"].values() for ms in values]
    join_ms = [ms for g in gens for _, ms in g["joins"]]
    acked: dict[int, int] = ev["activity"]["acked"]
    lost = _lost(gens, acked)
    faults = [t for t, _ in ev["faults"]]
    errors = [
        (t, kind)
        for t, kind in [*(e for g in gens for e in g["errors"]), *ev["activity"]["errors"]]
        if not any(0 <= t - f <= FAULT_WINDOW_S for f in faults)
    ]
    busy = [b for g in gens for _, b in g["cpu"][2:]]
    saturated = sum(1 for b in busy if b > BUSY_LIMIT) / max(1, len(busy))
    tips = ev["activity"]["tips"]
    return {
        "chat_viewers": viewers,
        "joined": ever,
        "joined_share": ever / viewers if viewers else 1.0,
        "joined_at_end": sum(g["joined_at_end"] for g in gens),
        "join_kinds": _sum_counters(g["join_kinds"] for g in gens),
        "join_p50_ms": pct(join_ms, 50),
        "join_p99_ms": pct(join_ms, 99),
        "chat_deliveries_timed": len(chat),
        "chat_p50_ms": pct(chat, 50),
        "chat_p99_ms": pct(chat, 99),
        "lines_sent": ev["activity"]["sent"],
        "lines_acked": len(acked),
        "chat_ack_p99_ms": pct([ms for _, ms in ev["activity"]["ack_ms"]], 99),
        "acked_lost": lost,
        "duplicates": sum(g["duplicates"] for g in gens),
        "glass_p50_ms": pct([ms for g in gens for _, ms in g["glass"]], 50),
        "glass_p90_ms": pct([ms for g in gens for _, ms in g["glass"]], 90),
        "parts_fetched": sum(sum(g["parts"].values()) for g in gens),
        "tips": len(tips),
        "tip_outcomes": _count(o for _, _, o in tips),
        "tip_p99_ms": pct([ms for _, ms, _ in tips], 99),
        "subscriptions": len(ev["activity"]["subscriptions"]),
        "errors": len(errors),
        "errors_by_kind": _count(k for _, k in errors),
        "generator_busy_max": max(busy, default=0.0),
        "generator_busy_mean": float(np.mean(busy)) if busy else 0.0,
        "generator_saturated_share": saturated,
        "valid": saturated <= SATURATED_SHARE,
    }


def verdicts(s: Scenario, fig: dict[str, Any], ev: dict[str, Any]) -> list[Verdict]:
    o = s.objectives
    out = [
        _at_least("joins accepted", fig["joined_share"], o.joins_accepted_min, "{:.1%}"),
        _at_most("chat delivery p99 (ms)", fig["chat_p99_ms"], o.chat_p99_ms, "{:.0f}"),
        _at_most("acked lines lost", fig["acked_lost"], o.acked_lost_max, "{:.0f}"),
        _at_most("unexpected errors", fig["errors"], o.errors_max, "{:.0f}"),
    ]
    if s.joins.glass_sample:
        glass = _at_most("glass-to-glass p90 (ms)", fig["glass_p90_ms"], o.glass_p90_ms, "{:.0f}")
        out.append(glass)
    if o.tips_exactly_once and s.tips.tips:
        once = ev["tips_db"]
        ok = once.get("ok", False)
        text = str(once.get("text", ""))
        out.append(Verdict("tips made exactly once", 1.0 if ok else 0.0, 1.0, ok, text))
    if o.ledger_balanced:
        ok = bool(ev["ledger"].get("ok"))
        out.append(Verdict("ledger balanced", 1.0 if ok else 0.0, 1.0, ok, _ledger(ev["ledger"])))
    valid = fig["valid"]
    out.append(Verdict("load generator not saturated", fig["generator_saturated_share"],
                       SATURATED_SHARE, valid,
                       f"busiest second {fig['generator_busy_max']:.0%} of a core; "
                       f"{fig['generator_saturated_share']:.0%} of seconds over "
                       f"{BUSY_LIMIT:.0%}"))  # fmt: skip
    return out


def _lost(gens: list[dict[str, Any]], acked: dict[int, int]) -> int:
    """Acked lines a tracked viewer should have had (sent after it first joined) but never
    received, live or in a hello's history."""
    lost = 0
    for g in gens:
        for first_join, seen in g["tracked"]:
            owed = [seq for seq, sent_ns in acked.items() if sent_ns / 1e9 > first_join + 0.5]
            lost += sum(1 for seq in owed if seq < len(seen) and not seen[seq])
    return lost


def _ledger(check: dict[str, Any]) -> str:
    if "transactions" not in check:
        return str(check.get("error", check))[:300]
    return (
        f"{check['transactions']:,} transactions, {check.get('entries', 0):,} entries;"
        f" {check.get('unbalanced_transactions', 0)} unbalanced,"
        f" {check.get('accounts_off', 0)} accounts off"
    )


def _at_most(name: str, value: float, limit: float, fmt: str) -> Verdict:
    passed = bool(value <= limit) if value == value else False  # NaN: nothing measured
    return Verdict(name, value, limit, passed, f"{fmt.format(value)} (at most {fmt.format(limit)})")


def _at_least(name: str, value: float, limit: float, fmt: str) -> Verdict:
    passed = bool(value >= limit)
    text = f"{fmt.format(value)} (at least {fmt.format(limit)})"
    return Verdict(name, value, limit, passed, text)


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _sum_counters(counters: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for counter in counters:
        for key, n in counter.items():
            out[key] = out.get(key, 0) + n
    return out
