"""The metric names a PromQL expression reads, and the names a /metrics page exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

# PromQL words that are not metrics (aggregations and functions are told by their "(").
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
_MODIFIERS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def promql_names(expr: str) -> set[str]:
    """Every metric name in a PromQL expression (Grafana's $__ variables allowed in ranges)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = _MODIFIERS.sub("", expr)  # grouping labels
    names: set[str] = set()
    for found in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word = found.group(0)
        if expr[found.end() :].lstrip().startswith("(") or word in _KEYWORDS:
            continue  # a function or an aggregation
        names.add(word)
    return names


def exported_names(metrics_text: str) -> set[str]:
    """The series names a /metrics page offers, for every family it declares (those with
    labels and no sample yet too)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("", "_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
    }
    names: set[str] = set()
    for family in text_string_to_metric_families(metrics_text):
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def rule_expressions(path: Path) -> Iterator[str]:
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule["expr"]


def dashboard_expressions(path: Path) -> Iterator[str]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            yield from (target["expr"] for target in panel.get("targets", []))
            yield from walk(panel.get("panels", []))

    yield from walk(json.loads(path.read_text())["panels"])
