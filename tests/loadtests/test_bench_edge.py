"""bench_edge runs end to end when made tiny (three viewers, a few seconds) and prints every
figure it is for. The figures' values are the benchmark's business, not this test's."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 400


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_bench_edge_prints_its_figures() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECORE_")}
    args = ["--viewers", "3", "--seconds", "3", "--warmup", "1", "--ramp", "0.5",
            "--processes", "1"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtests.bench_edge", *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGTERM: the benchmark stops the nodes, Redis and PostgreSQL it started.
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        pytest.fail(f"bench_edge did not finish within {RUN_TIMEOUT_S} s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]

    figures = {
        "origin requests per part": r"origin requests per part per edge: (\d+) parts made in"
        r" the window; the origin answered the edge (-?\d+) part requests \((-?[\d.]+) per part\)",
        "the edge's counts": r"the edge's view: \d+ viewer requests .* (\d+) sent upstream",
        "glass to glass via the origin": r"via the origin: p50 -?\d+ ms",
        "glass to glass via the edge": r"via the edge: +p50 -?\d+ ms",
        "edge minus origin": r"edge - origin: p50 [+-]\d+ ms",
        "edge CPU per 100 viewers": r"edge CPU: \d+% of one core for 3 viewers, [\d.]+% of one"
        r" core per 100 viewers",
        "part delivery": r"part delivery on the edge: \d+ parts received by \d+ of 3 viewers",
        "part request latency": r"part requests: p50 \d+ ms, p90 \d+ ms, p99 \d+ ms",
        "errors": r"errors: viewers \d+, blocking reloads answered 503 \d+",
        "generator load": r"generator 0: 3 viewers, CPU \d+% of one core",
        "machine": rf"machine: {os.cpu_count()} cores, load average [\d.]+, [\d.]+, [\d.]+",
    }
    missing = [name for name, pattern in figures.items() if not re.search(pattern, output)]
    assert not missing, f"{missing} not in:\n{output}"
    parts = re.search(figures["origin requests per part"], output)
    assert parts is not None and int(parts[1]) > 0  # the stream reached the viewers' window
