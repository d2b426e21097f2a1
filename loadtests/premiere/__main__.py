"""Play a premiere scenario against livecore and judge it.

    .venv/bin/python -m loadtests.premiere loadtests/scenarios/box.toml [--out DIR]

See loadtests/premiere/__init__.py for what the evening holds. Exit status: 0 when every
objective is met and the run is valid, 1 when one is missed, 2 for a scenario that cannot be
played.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import queue
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import uvloop

from loadtests.bench_ingest import Publishers
from loadtests.premiere import activity, generator, judge, report
from loadtests.premiere.deployment import Deployment, raise_nofile
from loadtests.premiere.monitor import Monitor
from loadtests.premiere.scenario import Fault, Scenario, ScenarioError, load
from loadtests.server import ROOT

SETTLE_S = 20.0  # after the timeline: the generators' last records, the last webhooks


class _Progress:
    """One console line a second: time, sockets joined, generator load, the last fault."""

    def __init__(self, s: Scenario) -> None:
        self.s = s
        self.joined: dict[int, int] = {}
        self.busy: dict[int, float] = {}
        self.last_fault = ""
        self.tty = sys.stderr.isatty()

    def tick(self, index: int, t: float, joined: int, busy: float) -> None:
        self.joined[index] = joined
        self.busy[index] = busy
        line = (
            f"t={t:5.1f}/{self.s.duration_s:g}s  chat sockets {sum(self.joined.values()):6d}"
            f"/{self.s.joins.chat_viewers}  generator busy {max(self.busy.values()):4.0%}"
            f"  {self.last_fault}"
        )
        print(("\r" + line.ljust(100)) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)  # fmt: skip


async def _fault(dep: Deployment, f: Fault, t0: float, log: list[tuple[float, str]],
                 progress: _Progress) -> None:  # fmt: skip
    await asyncio.sleep(max(0.0, t0 + f.at_s - time.time()))
    at = time.time() - t0
    if f.kind == "kill_node":
        label = await dep.kill_node(f.node)
    elif f.kind == "restart_redis":
        label = await dep.restart_redis()
    elif f.kind == "restart_postgres":
        label = await dep.restart_postgres()
    elif f.kind == "kill_packager":
        label = await dep.kill_packager(f.node)
    else:
        label = await dep.stripe_down(f.seconds)
    log.append((at, label))
    progress.last_fault = f"[{at:.0f}s {label}]"


async def _tips_once(dsn: str, slug: str, keys: list[str]) -> dict[str, Any]:
    """Each tip key made one tip row, and each paid one succeeded once."""
    if not keys:
        return {"ok": True, "text": "no tips"}
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT t.idempotency_key, count(*) AS n, count(*) FILTER"
            " (WHERE t.status = 'succeeded') AS ok FROM tips t JOIN streams s"
            " ON s.id = t.stream_id WHERE s.slug = $1 GROUP BY 1", slug,
        )  # fmt: skip
    finally:
        await conn.close()
    made = {r["idempotency_key"]: (r["n"], r["ok"]) for r in rows}
    twice = [k for k, (n, _) in made.items() if n > 1]
    missing = [k for k in keys if k not in made]
    ok = not twice and not missing
    text = f"{len(made)} tips for {len(keys)} keys; {sum(o for _, o in made.values())} succeeded"
    if twice or missing:
        text += f"; made twice: {twice[:5]}; missing: {missing[:5]}"
    return {"ok": ok, "text": text, "made_twice": twice, "missing": missing}


async def play(s: Scenario, out: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="livecore-premiere-") as tmp_name:
        dep = Deployment(s, Path(tmp_name))
        try:
            await dep.start()
            return await _evening(s, dep, out)
        finally:
            await dep.stop()
            _keep_logs(dep, out)


def _keep_logs(dep: Deployment, out: Path) -> None:
    """The nodes' logs go beside the report: what the servers said about the evening."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for log in dep.logs:
        if log.exists():
            shutil.copyfile(log, logs / log.name)


async def _evening(s: Scenario, dep: Deployment, out: Path) -> int:
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        setup = await activity.set_up(http, dep.bases[0], s)
        t0 = time.time() + 2.0
        rec = activity.Record(t0)
        ctx = multiprocessing.get_context("spawn")
        ticks: Any = ctx.Queue()
        count = s.deployment.generator_processes
        lines = int(s.chat.rate * s.chat.seconds) + 1
        procs = []
        for i in range(count):
            share = s.joins.chat_viewers // count + (1 if i < s.joins.chat_viewers % count else 0)
            players = s.joins.hls_players // count + (1 if i < s.joins.hls_players % count else 0)
            glass = s.joins.glass_sample // count + (1 if i < s.joins.glass_sample % count else 0)
            plan = generator.Plan(
                i, tuple(dep.bases), setup.slug, t0, t0 + s.joins.at_s, s.joins.over_s,
                share, s.joins.tracked_every, players, min(glass, players), lines,
                t0 + s.duration_s,
            )  # fmt: skip
            proc = ctx.Process(target=generator.main, args=(plan, ticks), daemon=True)
            proc.start()
            procs.append(proc)
        monitor = Monitor(t0, dep.processes, dep.bases)
        monitor.start()
        progress = _Progress(s)
        faults: list[tuple[float, str]] = []
        await asyncio.sleep(max(0.0, t0 + s.publisher.at_s - time.time()))
        publisher = Publishers(dep.bases[0], [(setup.slug, setup.stream_key)], 1,
                               s.duration_s + SETTLE_S)  # fmt: skip
        publisher.start()
        tasks = [
            asyncio.create_task(activity.chat_storm(http, dep, s, setup, rec)),
            asyncio.create_task(activity.tip_burst(http, dep, s, setup, rec)),
            asyncio.create_task(activity.subscribe(http, dep, s, setup, rec)),
            *(asyncio.create_task(_fault(dep, f, t0, faults, progress)) for f in s.faults),
        ]
        records: dict[int, dict[str, Any]] = {}
        deadline = t0 + s.duration_s + SETTLE_S + 30
        while len(records) < count and time.time() < deadline:
            try:
                msg = await asyncio.to_thread(ticks.get, True, 0.5)
            except queue.Empty:
                continue
            if msg[0] == "tick":
                progress.tick(*msg[1:])
            else:
                records[msg[1]] = msg[2]
        print(file=sys.stderr)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                rec.error(f"activity failed: {type(r).__name__}: {r}")
        await asyncio.to_thread(publisher.close)
        monitor.stop()
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        if len(records) < count:
            rec.error(f"{count - len(records)} generator process(es) sent no record")
        tips_db = (await _tips_once(dep.dsn, setup.slug, rec.tip_keys)) if dep.dsn else {}
        ledger = await asyncio.to_thread(dep.ledger_check) if dep.dsn else {"ok": True}
    ev: dict[str, Any] = {
        "scenario_name": s.name,
        "t0": t0,
        "duration_s": s.duration_s,
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        "bases": dep.bases,
        "faults": faults,
        "generators": [records[i] for i in sorted(records)],
        "activity": {
            "acked": rec.acked,
            "ack_ms": rec.ack_ms,
            "sent": rec.sent,
            "send_errors": rec.send_errors,
            "tips": rec.tips,
            "subscriptions": rec.subscriptions,
            "errors": rec.errors,
        },
        "monitor": {
            "cpu": monitor.cpu,
            "rss_mb": monitor.rss_mb,
            "loop_lag_ms": monitor.loop_lag_ms,
        },
        "publisher": {"connected": publisher.connected, "errors": publisher.errors},
        "tips_db": tips_db,
        "ledger": ledger,
    }
    fig = judge.figures(s, ev)
    verdicts = judge.verdicts(s, fig, ev)
    page = report.write(out, ev, fig, verdicts)
    for v in verdicts:
        print(f"{'pass' if v.passed else 'FAIL'}  {v.name}: {v.text}")
    print(f"report: {page}")
    return 0 if all(v.passed for v in verdicts) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description="Play a premiere scenario against livecore.")
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--out", type=Path, help="report folder (default var/reports/NAME-TIME)")
    args = parser.parse_args()
    try:
        s = load(args.scenario)
    except ScenarioError as exc:
        print(f"scenario: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    out = args.out or ROOT / "var" / "reports" / f"{s.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    raise_nofile()
    print(f"premiere {s.name}: {os.cpu_count()} cores; report in {out}", file=sys.stderr)
    code = 1
    with contextlib.suppress(KeyboardInterrupt):
        code = uvloop.run(asyncio.wait_for(play(s, out), s.duration_s + 600))
    raise SystemExit(code)


if __name__ == "__main__":
    main()
