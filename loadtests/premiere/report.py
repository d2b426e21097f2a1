"""The premiere's report: `report.json` with every series, and `report.html`, one
self-contained page (plots inline as SVG) with the verdicts and the faults marked on every
time axis."""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from loadtests.premiere.judge import Verdict

Plot = Callable[[Axes, dict[str, Any]], None]


def write(out: Path, ev: dict[str, Any], fig: dict[str, Any], verdicts: list[Verdict]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    data = {"figures": fig, "verdicts": [asdict(v) for v in verdicts], **ev}
    (out / "report.json").write_text(json.dumps(data, default=_plain, allow_nan=True))
    page = out / "report.html"
    page.write_text(_html(ev, fig, verdicts))
    return page


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return len(value)  # tracked viewers' bitsets: their size, not their bytes
    if isinstance(value, set | tuple):
        return list(value)
    return str(value)


def _per_second(
    points: list[tuple[float, float]], reduce: Callable[[list[float]], float]
) -> tuple[list[int], list[float]]:
    bins: dict[int, list[float]] = {}
    for t, v in points:
        bins.setdefault(int(t), []).append(v)
    xs = sorted(bins)
    return xs, [reduce(bins[x]) for x in xs]


def _joins(ax: Axes, ev: dict[str, Any]) -> None:
    joins = [(t, 1.0) for g in ev["generators"] for t, _ in g["joins"]]
    xs, ys = _per_second(joins, lambda v: float(len(v)))
    ax.bar(xs, ys, width=1.0, color="#4c78a8", label="joins per second")
    ax.set_ylabel("joins / s")
    total: dict[int, float] = {}
    for g in ev["generators"]:
        for t, n in g["connected"]:
            total[int(t)] = total.get(int(t), 0) + n
    twin = ax.twinx()
    twin.plot(sorted(total), [total[k] for k in sorted(total)], color="#f58518",
              label="chat sockets joined")  # fmt: skip
    twin.set_ylabel("sockets")
    ax.set_title("Joins per second and chat sockets joined")


def _chat(ax: Axes, ev: dict[str, Any]) -> None:
    merged: dict[int, list[float]] = {}
    for g in ev["generators"]:
        for s, values in g["chat_ms"].items():
            merged.setdefault(int(s), []).extend(values)
    xs = sorted(merged)
    for q, color in ((50, "#4c78a8"), (99, "#e45756")):
        ax.plot(xs, [np.percentile(merged[x], q) for x in xs], color=color, label=f"p{q}")
    ax.set_ylabel("ms")
    ax.set_title("Chat delivery latency (sent to received, tracked viewers)")


def _glass(ax: Axes, ev: dict[str, Any]) -> None:
    points = [p for g in ev["generators"] for p in g["glass"]]
    for q, color in ((50, "#4c78a8"), (90, "#e45756")):
        xs, ys = _per_second(points, lambda v, q=q: float(np.percentile(v, q)))  # type: ignore[misc]
        ax.plot(xs, ys, marker=".", color=color, label=f"p{q}")
    ax.set_ylabel("ms")
    ax.set_title("Glass-to-glass (publisher's send time to part received)")


def _tips(ax: Axes, ev: dict[str, Any]) -> None:
    tips = ev["activity"]["tips"]
    ok = [(t, ms) for t, ms, o in tips if o in ("processed", "duplicate")]
    other = [(t, ms) for t, ms, o in tips if o not in ("processed", "duplicate")]
    for points, color, label in ((ok, "#54a24b", "settled"), (other, "#e45756", "not settled")):
        if points:
            ax.scatter([t for t, _ in points], [ms for _, ms in points], s=8, color=color,
                       label=label)  # fmt: skip
    ax.set_ylabel("ms")
    ax.set_title("Tip latency (API call to settled webhook)")


def _series(key: str, title: str, unit: str) -> Plot:
    def plot(ax: Axes, ev: dict[str, Any]) -> None:
        for label, points in sorted(ev["monitor"][key].items()):
            if points:
                ax.plot(*zip(*points, strict=True), label=label)
        ax.set_ylabel(unit)
        ax.set_title(title)

    return plot


def _errors(ax: Axes, ev: dict[str, Any]) -> None:
    errors = [e for g in ev["generators"] for e in g["errors"]] + ev["activity"]["errors"]
    xs, ys = _per_second([(t, 1.0) for t, _ in errors], lambda v: float(len(v)))
    ax.bar(xs, ys, width=1.0, color="#e45756")
    ax.set_ylabel("per second")
    ax.set_title("Errors")


PLOTS: list[Plot] = [
    _joins, _chat, _glass, _tips,
    _series("cpu", "CPU per process (a node with its media workers)", "cores"),
    _series("rss_mb", "Resident memory per process", "MiB"),
    _series("loop_lag_ms", "Event-loop lag per node (mean of the probes each second)", "ms"),
    _errors,
]  # fmt: skip


def _svg(plot: Plot, ev: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(9, 3.2))
    try:
        plot(ax, ev)
        for t, label in ev["faults"]:
            ax.axvline(t, color="#333", linestyle="--", linewidth=1)
            ax.annotate(label, (t, 1.0), xycoords=("data", "axes fraction"), fontsize=7,
                        rotation=90, va="top", ha="right")  # fmt: skip
        ax.set_xlabel("seconds from the start")
        ax.set_xlim(0, ev["duration_s"])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8)
        buf = io.StringIO()
        fig.tight_layout()
        fig.savefig(buf, format="svg")
        return buf.getvalue().split("?>", 1)[-1]  # inline: without the XML declaration
    finally:
        plt.close(fig)


def _html(ev: dict[str, Any], fig: dict[str, Any], verdicts: list[Verdict]) -> str:
    ok = all(v.passed for v in verdicts)
    rows = "".join(
        f"<tr><th scope='row'>{html.escape(v.name)}</th><td>{'pass' if v.passed else 'FAIL'}</td>"
        f"<td>{html.escape(v.text)}</td></tr>"
        for v in verdicts
    )
    facts = "".join(
        f"<tr><th scope='row'>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in fig.items()
    )
    faults = "".join(f"<li>{t:.1f} s: {html.escape(label)}</li>" for t, label in ev["faults"])
    plots = "".join(f"<figure>{_svg(p, ev)}</figure>" for p in PLOTS)
    title = f"Premiere: {html.escape(ev['scenario_name'])}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:15px/1.4 system-ui,sans-serif;margin:1.5rem auto;max-width:60rem;padding:0 1rem}}
table{{border-collapse:collapse;width:100%;overflow-wrap:break-word}}
th,td{{padding:.2rem .6rem;border-bottom:1px solid #ddd;text-align:left}}
figure{{margin:1rem 0}}svg{{max-width:100%;height:auto}}.verdict{{font-size:1.4rem}}</style></head>
<body><main><h1>{title}</h1>
<p class="verdict">{"All objectives met" if ok else "Objectives missed"}
{"" if fig["valid"] else " (INVALID: the load generator was saturated)"}</p>
<p>{html.escape(ev["machine"])}; {len(ev["bases"])} node(s); {ev["duration_s"]:g} s.</p>
<h2>Objectives</h2><table>{rows}</table>
<h2>Faults</h2><ul>{faults or "<li>none</li>"}</ul>
<h2>Over time</h2>{plots}
<h2>Figures</h2><table>{facts}</table>
</main></body></html>
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)
