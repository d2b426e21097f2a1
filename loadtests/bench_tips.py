"""Tip burst: signed `payment_intent.succeeded` webhooks at a set rate, some delivered twice.

    .venv/bin/python -m loadtests.bench_tips [--tips 5000] [--rate 1100] [--duplicates 0.1]
        [--concurrency 64] [--keep-dir DIR]

Everything runs on 127.0.0.1 in a temporary directory and is stopped by PID afterwards: a
Stripe-shaped server (the tests' peer, in this process), and `livecore serve` with the
embedded PostgreSQL, configured with a Stripe secret key, that server as Stripe's API base,
and a webhook secret. Setup (not timed): a creator, a stream, 50 viewers, and --tips tips
made over the HTTP API (each a PaymentIntent at the Stripe-shaped server), each then marked
paid there, which yields its webhook event.

Measured: the events are sent at --rate per second (each signed when sent, as Stripe does),
plus --duplicates of them sent again a little later, over --concurrency keep-alive
connections opened before the burst. Each answer's latency is recorded;
postings/s = events that posted (outcome "processed") / the time from the first send to
the last answer. Each posting is the tip's flip to succeeded, its ledger transaction, the
processing-fee lookup at the Stripe-shaped server and its posting, and the room event.
Processing fees are read from Stripe and posted once the burst pauses (--fee-wait seconds
are given to them); then `livecore ledger check` proves the ledger from its entries.

Bounded: --tips <= 50,000, the send phase ends with its last event, every request has a
30 s timeout, and a watchdog stops the run after 20 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import uvloop

from loadtests.server import ROOT, free_port, scrape, stalls, start_server, stop_server
from tests.support.stripe_peer import StripePeer, event_body, sign_payload

PASSWORD = "benchmark passphrase"
WEBHOOK_SECRET = "whsec_bench"
VIEWERS = 50


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    body: dict[str, Any] = await resp.json()
    if resp.status >= 300:
        raise SystemExit(f"{resp.method} {resp.url}: {resp.status} {body}")
    return body


async def _register(http: aiohttp.ClientSession, base: str, n: int, creator: bool) -> str:
    resp = await http.post(
        f"{base}/api/v1/auth/register",
        json={"email": f"tipper{n}-{time.time_ns()}@example.com", "password": PASSWORD,
              "display_name": f"Tipper {n}", "creator": creator},
    )  # fmt: skip
    return str((await _json(resp))["token"])


async def _setup(
    http: aiohttp.ClientSession, base: str, peer: StripePeer, tips: int
) -> list[bytes]:
    creator = await _register(http, base, 0, True)
    auth = {"Authorization": f"Bearer {creator}"}
    await _json(await http.post(f"{base}/api/v1/streams", json={"slug": "burst"}, headers=auth))
    viewers = await asyncio.gather(*(_register(http, base, n, False) for n in range(1, VIEWERS)))
    limit = asyncio.Semaphore(16)

    async def tip(n: int) -> str:
        headers = {"Authorization": f"Bearer {viewers[n % len(viewers)]}",
                   "Idempotency-Key": f"burst-{n}"}  # fmt: skip
        async with limit:
            resp = await http.post(
                f"{base}/api/v1/streams/burst/tips", headers=headers,
                json={"amount_minor": 500 + n % 1000, "currency": "usd", "message": "gg"},
            )  # fmt: skip
            return str((await _json(resp))["client_secret"]).split("_secret_")[0]

    intents = await asyncio.gather(*(tip(n) for n in range(tips)))
    bodies = []
    for pi_id in intents:
        events = peer.succeed_payment_intent(pi_id)
        succeeded = next(e for e in events if e["type"] == "payment_intent.succeeded")
        bodies.append(event_body(succeeded))
    return bodies


async def _healthz(http: aiohttp.ClientSession, base: str) -> None:
    async with http.get(f"{base}/healthz") as resp:
        await resp.read()


async def _burst(
    http: aiohttp.ClientSession, base: str, bodies: list[bytes], rate: float, duplicates: float,
    concurrency: int,
) -> tuple[list[float], dict[str, int], float]:  # fmt: skip
    schedule = [(i / rate, body) for i, body in enumerate(bodies)]
    # Duplicates: an already sent event again, 0.05-0.5 s after its first delivery.
    for i in random.sample(range(len(bodies)), int(len(bodies) * duplicates)):
        schedule.append((i / rate + random.uniform(0.05, 0.5), bodies[i]))
    schedule.sort(key=lambda item: item[0])
    latencies: list[float] = []
    outcomes: dict[str, int] = {}

    async def send(body: bytes) -> None:
        headers = {"Stripe-Signature": sign_payload(body, WEBHOOK_SECRET),
                   "Content-Type": "application/json"}  # fmt: skip
        started = time.perf_counter()
        async with http.post(f"{base}/webhooks/stripe", data=body, headers=headers) as resp:
            answer = await resp.json()
        latencies.append(time.perf_counter() - started)
        key = answer.get("outcome", f"http {resp.status}")
        outcomes[key] = outcomes.get(key, 0) + 1

    # The generator's connections are opened first, as a steady flow of webhooks keeps them
    # open: opening 64 at the burst's first instant measures connection setup, not posting.
    await asyncio.gather(*(_healthz(http, base) for _ in range(concurrency)))
    start = time.perf_counter()
    tasks = []
    for at, body in schedule:
        delay = start + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(body)))
    await asyncio.gather(*tasks)
    return latencies, outcomes, time.perf_counter() - start


def _ledger_check(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "livecore", "ledger", "check", "--json"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if not done.stdout:
        raise SystemExit(f"ledger check failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def _main(args: argparse.Namespace, data_dir: Path) -> None:
    peer = StripePeer()
    await peer.start()
    port = free_port()
    env = {
        "LIVECORE_STRIPE__SECRET_KEY": "sk_test_bench",
        "LIVECORE_STRIPE__WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LIVECORE_STRIPE__API_BASE": peer.url,
        # Many tips from few viewers: the abuse limits are not what is measured.
        "LIVECORE_TIPS__VIEWER_TIPS_PER_MINUTE": "10000",
        "LIVECORE_TIPS__VIEWER_DAILY_MINOR": str(10**12),
        "LIVECORE_TIPS__NEW_ACCOUNT_HOURS": "0",
        "LIVECORE_LOG_LEVEL": "warning",
    }
    log = data_dir / "server.log"
    proc = await asyncio.to_thread(start_server, port, data_dir, log, env=env)
    base = f"http://127.0.0.1:{port}"
    server = psutil.Process(proc.pid)
    try:
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            t0 = time.perf_counter()
            bodies = await _setup(http, base, peer, args.tips)
            print(f"setup: {args.tips} tips created in {time.perf_counter() - t0:.1f} s")
            runtime0 = await asyncio.to_thread(scrape, base)
            cpu0 = sum(server.cpu_times()[:2])
            own0 = sum(psutil.Process().cpu_times()[:2])
            machine0 = psutil.cpu_times()
            latencies, outcomes, elapsed = await _burst(
                http, base, bodies, args.rate, args.duplicates, args.concurrency
            )
            server_cpu = sum(server.cpu_times()[:2]) - cpu0
            own_cpu = sum(psutil.Process().cpu_times()[:2]) - own0
            machine1 = psutil.cpu_times()
            runtime1 = await asyncio.to_thread(scrape, base)
            idle = (machine1.idle - machine0.idle) / (elapsed * (os.cpu_count() or 1))
            # Processing fees are read from Stripe once the burst pauses: let them land,
            # so the ledger check below covers them too.
            await asyncio.sleep(args.fee_wait)
    finally:
        await asyncio.to_thread(stop_server, proc)
        await peer.close()
    env_check = {k: v for k, v in os.environ.items() if not k.startswith("LIVECORE_")}
    env_check["LIVECORE_DATA_DIR"] = str(data_dir)
    check = await asyncio.to_thread(_ledger_check, env_check)
    latencies.sort()
    processed = outcomes.get("processed", 0)
    print(f"cores: {os.cpu_count()}")
    print(f"webhooks sent: {len(latencies)} ({args.tips} events + duplicates) at "
          f"{args.rate:g}/s target, outcomes {outcomes}")  # fmt: skip
    print(f"postings: {processed} in {elapsed:.2f} s = {processed / elapsed:.0f} postings/s")
    print(f"webhook latency: p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms")  # fmt: skip
    print(f"duplicates rejected: {outcomes.get('duplicate', 0)}")
    print(f"server CPU: {server_cpu / elapsed * 100:.0f}% of one core during the burst")
    print(f"server during the burst: {stalls(runtime0, runtime1)}")
    print(f"this process (load generator and Stripe-shaped server): "
          f"{own_cpu / elapsed * 100:.0f}% of one core")  # fmt: skip
    print(f"machine: {100 - idle * 100:.0f}% busy (PostgreSQL takes most of the rest)")
    print(f"ledger check: {'balanced' if check['ok'] else 'BROKEN'} ({check})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tips", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=1100.0)
    parser.add_argument("--duplicates", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--fee-wait",
        type=float,
        default=5.0,
        help="seconds for the trailing fee postings before the server stops",
    )
    parser.add_argument("--keep-dir", type=Path, help="keep the server's data and log here")
    args = parser.parse_args()
    if not 1 <= args.tips <= 50_000 or not 0 <= args.duplicates <= 1 or args.rate <= 0:
        parser.error("--tips 1..50000, --duplicates 0..1, --rate > 0")
    with contextlib.ExitStack() as stack:
        if args.keep_dir:
            args.keep_dir.mkdir(parents=True, exist_ok=True)
            data_dir = args.keep_dir
        else:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tips-")))
        uvloop.run(asyncio.wait_for(_main(args, data_dir), timeout=20 * 60))


if __name__ == "__main__":
    main()
