"""A premiere scenario: the evening's timeline and its service objectives, read from TOML.

Times are seconds from the start of the run (the creator goes live at `publisher.at_s`).
Every number has bounds: a scenario cannot ask for an unbounded load or an endless run.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

FaultKind = Literal[
    "kill_node", "restart_redis", "restart_postgres", "kill_packager", "stripe_down"
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


class ScenarioError(ValueError):
    """A scenario file that cannot be played, with the reason (the key and its bound)."""


@dataclass(frozen=True, slots=True)
class Deployment:
    # livecore nodes the tool starts (each `livecore serve`), sharing Redis and PostgreSQL.
    nodes: int = 1
    # A running deployment to play against instead (its public URLs); then nothing is started
    # and faults that need a process of the tool's own are refused.
    urls: tuple[str, ...] = ()
    # Generator processes (chat sockets and HLS players are spread over them).
    generator_processes: int = 2
    # livecore settings for the nodes started here, as "section.key" = "value" (each becomes
    # LIVECORE_SECTION__KEY), e.g. {"hls.renditions" = "source"}.
    settings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Publisher:
    at_s: float = 0.0  # the creator goes live


@dataclass(frozen=True, slots=True)
class Joins:
    at_s: float = 5.0  # the countdown ends: viewers start arriving
    over_s: float = 10.0  # the ramp: chat_viewers arrive evenly over this many seconds
    chat_viewers: int = 100
    hls_players: int = 4
    glass_sample: int = 2  # players that decode parts and measure glass-to-glass
    tracked_every: int = 5  # every Nth chat viewer keeps the lines it received (loss check)


@dataclass(frozen=True, slots=True)
class ChatStorm:
    at_s: float = 10.0
    seconds: float = 10.0
    senders: int = 10
    rate: float = 20.0  # lines per second in total


@dataclass(frozen=True, slots=True)
class TipBurst:
    at_s: float = 12.0
    tips: int = 20  # made over the API, paid at the Stripe-shaped peer, settled by webhooks
    tippers: int = 10
    duplicates: float = 0.2  # share of webhooks delivered twice
    concurrency: int = 8


@dataclass(frozen=True, slots=True)
class Subscriptions:
    at_s: float = 14.0
    count: int = 0


@dataclass(frozen=True, slots=True)
class Fault:
    at_s: float
    kind: FaultKind
    node: int = 0  # kill_node, kill_packager: which node (index)
    seconds: float = 5.0  # stripe_down: how long Stripe is unreachable


@dataclass(frozen=True, slots=True)
class Objectives:
    joins_accepted_min: float = 0.99  # share of viewers joined (queued, then accepted, counts)
    chat_p99_ms: float = 500.0
    acked_lost_max: int = 0
    glass_p90_ms: float = 3000.0
    tips_exactly_once: bool = True
    ledger_balanced: bool = True
    errors_max: int = 0  # unexpected errors (HTTP 5xx outside faults, protocol errors)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    duration_s: float
    deployment: Deployment = field(default_factory=Deployment)
    publisher: Publisher = field(default_factory=Publisher)
    joins: Joins = field(default_factory=Joins)
    chat: ChatStorm = field(default_factory=ChatStorm)
    tips: TipBurst = field(default_factory=TipBurst)
    subscriptions: Subscriptions = field(default_factory=Subscriptions)
    faults: tuple[Fault, ...] = ()
    objectives: Objectives = field(default_factory=Objectives)


_BOUNDS: dict[str, tuple[float, float]] = {
    "duration_s": (5, 3600),
    "nodes": (1, 8),
    "generator_processes": (1, 32),
    "at_s": (0, 3600),
    "over_s": (0.1, 600),
    "chat_viewers": (0, 100_000),
    "hls_players": (0, 5_000),
    "glass_sample": (0, 100),
    "tracked_every": (1, 1_000_000),
    "seconds": (0.1, 600),
    "senders": (1, 1000),
    "rate": (0.1, 5000),
    "tips": (0, 50_000),
    "tippers": (1, 1000),
    "duplicates": (0, 1),
    "concurrency": (1, 512),
    "count": (0, 10_000),
    "node": (0, 7),
}


def load(path: Path) -> Scenario:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    return parse(raw, default_name=path.stem)


def parse(raw: dict[str, Any], default_name: str = "scenario") -> Scenario:
    known = {"name", "duration_s", "deployment", "publisher", "joins", "chat", "tips",
             "subscriptions", "faults", "objectives"}  # fmt: skip
    _no_unknown("scenario", raw, known)
    faults = raw.get("faults", [])
    if not isinstance(faults, list):
        raise ScenarioError("faults: a list of [[faults]] tables")
    scenario = Scenario(
        name=str(raw.get("name", default_name)),
        duration_s=_number("duration_s", raw.get("duration_s", 60)),
        deployment=_section(Deployment, "deployment", raw),
        publisher=_section(Publisher, "publisher", raw),
        joins=_section(Joins, "joins", raw),
        chat=_section(ChatStorm, "chat", raw),
        tips=_section(TipBurst, "tips", raw),
        subscriptions=_section(Subscriptions, "subscriptions", raw),
        faults=tuple(_fault(i, f) for i, f in enumerate(faults)),
        objectives=_section(Objectives, "objectives", raw),
    )
    _check_timeline(scenario)
    return scenario


def _check_timeline(s: Scenario) -> None:
    nodes = len(s.deployment.urls) or s.deployment.nodes
    for name, at in (("publisher", s.publisher.at_s), ("joins", s.joins.at_s),
                     ("chat", s.chat.at_s), ("tips", s.tips.at_s),
                     ("subscriptions", s.subscriptions.at_s)):  # fmt: skip
        if at >= s.duration_s:
            raise ScenarioError(f"{name}.at_s ({at}) must come before duration_s ({s.duration_s})")
    if s.joins.glass_sample > s.joins.hls_players:
        raise ScenarioError("joins.glass_sample must not exceed joins.hls_players")
    for f in s.faults:
        if f.at_s >= s.duration_s:
            raise ScenarioError(f"a {f.kind} fault at {f.at_s} s comes after the end of the run")
        if f.kind in ("kill_node", "kill_packager") and f.node >= nodes:
            raise ScenarioError(f"{f.kind}: node {f.node} does not exist ({nodes} nodes)")
        if s.deployment.urls:
            raise ScenarioError(f"{f.kind}: faults need nodes started by the tool, not urls")
        if f.kind == "kill_node" and nodes < 2:
            raise ScenarioError("kill_node needs at least 2 nodes: viewers move to a survivor")
        if f.kind == "kill_node" and f.node == 0:
            raise ScenarioError("kill_node: node 0 holds the publisher; kill another node")


def _section(cls: Any, name: str, raw: dict[str, Any]) -> Any:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise ScenarioError(f"{name}: a table")
    return _build(cls, name, table)


def _fault(i: int, table: Any) -> Fault:
    if not isinstance(table, dict):
        raise ScenarioError(f"faults[{i}]: a table")
    if table.get("kind") not in FAULT_KINDS:
        raise ScenarioError(f"faults[{i}].kind: one of {', '.join(FAULT_KINDS)}")
    if "at_s" not in table:
        raise ScenarioError(f"faults[{i}].at_s is required")
    fault: Fault = _build(Fault, f"faults[{i}]", table)
    return fault


def _build(cls: Any, where: str, table: dict[str, Any]) -> Any:
    names = {f.name: f for f in fields(cls)}
    _no_unknown(where, table, set(names))
    values: dict[str, Any] = {}
    for key, value in table.items():
        default = names[key].default
        if key == "kind":
            values[key] = value
        elif key == "settings":
            values[key] = _settings(where, value)
        elif key == "urls":
            if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
                raise ScenarioError(f"{where}.urls: a list of URLs")
            values[key] = tuple(u.rstrip("/") for u in value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ScenarioError(f"{where}.{key}: true or false")
            values[key] = value
        elif isinstance(default, int) and not isinstance(value, bool) and key in _BOUNDS:
            if not isinstance(value, int):
                raise ScenarioError(f"{where}.{key}: a whole number")
            values[key] = int(_number(f"{where}.{key}", value, key))
        else:
            values[key] = _number(f"{where}.{key}", value, key)
    return cls(**values)


def _settings(where: str, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ScenarioError(f'{where}.settings: a table of "section.key" = "value"')
    out = []
    for key, setting in value.items():
        if not re.fullmatch(r"[a-z_]+(\.[a-z_0-9]+)?", key) or not isinstance(setting, str):
            raise ScenarioError(f"{where}.settings: {key!r} must be a setting name with a string")
        out.append((key, setting))
    return tuple(out)


def _number(where: str, value: Any, key: str | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}: a number")
    low, high = _BOUNDS.get(key or where, (0, 1e12))
    if not low <= value <= high:
        raise ScenarioError(f"{where}: {value} is outside [{low:g}, {high:g}]")
    return float(value)


def _no_unknown(where: str, table: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {', '.join(unknown)}")
