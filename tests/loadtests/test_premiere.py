"""The premiere load test: scenario files are checked before anything starts, and the smoke
profile plays a whole (small) evening on 127.0.0.1 and writes its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtests.premiere.scenario import ScenarioError, load, parse

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "loadtests" / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_load(path: Path) -> None:
    scenario = load(path)
    assert scenario.name == path.stem
    assert scenario.duration_s > 0


def test_smoke_and_box_are_shipped() -> None:
    assert {"smoke", "box"} <= {p.stem for p in SCENARIOS}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"duration_s": 30, "chat": {"rat": 5}}, "chat: unknown keys rat"),
        ({"duration_s": 30, "joins": {"chat_viewers": -1}}, "joins.chat_viewers: -1 is outside"),
        ({"duration_s": 30, "joins": {"chat_viewers": 2.5}}, "a whole number"),
        ({"duration_s": 10**6}, "duration_s: 1000000 is outside"),
        ({"duration_s": "long"}, "duration_s: a number"),
        ({"duration_s": 30, "tips": {"at_s": 40}}, "tips.at_s (40.0) must come before"),
        ({"duration_s": 30, "faults": [{"at_s": 5, "kind": "flood"}]}, "faults[0].kind: one of"),
        ({"duration_s": 30, "faults": [{"kind": "restart_redis"}]}, "faults[0].at_s is required"),
        ({"duration_s": 30, "faults": [{"at_s": 50, "kind": "restart_redis"}]}, "after the end"),
        (
            {
                "duration_s": 30,
                "deployment": {"nodes": 1},
                "faults": [{"at_s": 5, "kind": "kill_node", "node": 0}],
            },
            "kill_node needs at least 2 nodes",
        ),
        (
            {
                "duration_s": 30,
                "deployment": {"nodes": 2},
                "faults": [{"at_s": 5, "kind": "kill_node", "node": 0}],
            },
            "node 0 holds the publisher",
        ),
        (
            {
                "duration_s": 30,
                "deployment": {"urls": ["http://127.0.0.1:8080"]},
                "faults": [{"at_s": 5, "kind": "restart_redis"}],
            },
            "faults need nodes started by the tool",
        ),
        ({"duration_s": 30, "joins": {"hls_players": 1, "glass_sample": 2}}, "glass_sample"),
        ({"duration_s": 30, "objectives": {"tips_exactly_once": 1}}, "true or false"),
        ({"duration_s": 30, "deployment": {"settings": {"hls.renditions": 1}}}, "with a string"),
        ({"duration_s": 30, "deployment": {"settings": {"Bad Key": "x"}}}, "a setting name"),
        ({"duration_s": 30, "deployment": {"settings": ["x"]}}, "a table of"),
    ],
)
def test_bad_scenarios_are_refused_with_the_reason(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):  # fmt: skip
        parse(raw)


def test_an_unreadable_scenario_exits_2_before_starting_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("duration_s = [")
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.premiere", str(bad), "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "scenario:" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(400)
def test_the_smoke_premiere_plays_and_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.premiere", "loadtests/scenarios/smoke.toml",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=360,
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    failed = [v for v in report["verdicts"] if not v["passed"]]
    assert done.returncode == 0, (failed, done.stdout[-3000:], done.stderr[-3000:])
    assert not failed
    figures = report["figures"]
    assert figures["joined"] == figures["chat_viewers"] == 60
    assert figures["lines_acked"] > 0 and figures["acked_lost"] == 0
    assert figures["parts_fetched"] > 0
    assert figures["tips"] == 8 and report["ledger"]["ok"]
    assert [label for _, label in report["faults"]] == ["Stripe unreachable for 3 s"]
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 8
    assert "All objectives met" in page
