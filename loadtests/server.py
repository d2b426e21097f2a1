"""What every benchmark needs: a `livecore serve` of its own on 127.0.0.1, and JSON calls.

The server runs from this checkout with the given LIVECORE_* settings, logs to a file, and
is stopped with SIGTERM (killed if it does not stop within a minute) by its PID only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (for node.internal_port), bounded tries."""
    for _ in range(100):
        first = free_port()
        socks = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                socks.append(sock)
                # As livecore binds them: a port in TIME_WAIT (a benchmark's own closed client
                # connections leave thousands) is free for a listener.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise SystemExit(f"no {count} consecutive free ports found")


def serve_processes(root_pid: int) -> list[int]:
    """The PIDs of the processes serving: the server itself, or with `--processes N` its N
    children (`serve --supervised`)."""
    children = []
    for child in psutil.Process(root_pid).children():
        try:
            if "--supervised" in child.cmdline():
                children.append(child.pid)
        except psutil.Error:
            continue
    return sorted(children) or [root_pid]


def start_server(
    port: int,
    data_dir: Path,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
    also_ready: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Start `livecore serve` and wait until /readyz answers (at most 90 s), there and at
    each of `also_ready` (base URLs: the processes' own addresses with `--processes`)."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECORE_")}
    # Every benchmark signs its users up from 127.0.0.1: lift the per-address sign-up limit
    # (a caller's env may still set it).
    child_env["LIVECORE_AUTH__REGISTER_IP_MAX_ATTEMPTS"] = "1000000"
    child_env.update(env or {})
    child_env.update(
        LIVECORE_PORT=str(port),
        LIVECORE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        LIVECORE_DATA_DIR=str(data_dir),
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "livecore", "serve"], env=child_env, cwd=ROOT, stdout=log,
            stderr=log, preexec_fn=preexec,
        )  # fmt: skip
    deadline = time.monotonic() + 90
    waiting = [f"http://127.0.0.1:{port}", *also_ready]
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{waiting[0]}/readyz", timeout=1):
                waiting.pop(0)
                if not waiting:
                    return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise SystemExit(f"the server did not start:\n{log_path.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        print(f"!! the server had already exited, with code {proc.returncode}, before SIGTERM")
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        print("the server did not stop within 60 s of SIGTERM; killing it")
        proc.kill()
        proc.wait(10)


def post_json(url: str, body: dict[str, object], token: str = "") -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=60) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


_LAG_BUCKETS = ("0.025", "0.05", "0.1")
# What `stalls` reads: the event-loop lag histogram and GC pauses by generation, keyed
# `name:label` for labelled samples.
RUNTIME_SERIES = (
    "livecore_event_loop_lag_seconds_count",
    *(f"livecore_event_loop_lag_seconds_bucket:{le}" for le in _LAG_BUCKETS),
    *(f"livecore_gc_pause_seconds_{kind}:{gen}" for kind in ("sum", "count") for gen in "012"),
)


def scrape(base: str, counters: tuple[str, ...] = ()) -> dict[str, float]:
    """Some series of a server's /metrics: `counters` (summed over their labels) and the
    RUNTIME_SERIES."""
    out: dict[str, float] = dict.fromkeys((*counters, *RUNTIME_SERIES), 0.0)
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as resp:
        for line in resp.read().decode().splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            for label in ("le", "generation"):
                if f'{label}="' in line:
                    name += ":" + line.split(f'{label}="', 1)[1].split('"', 1)[0]
            if name in out:
                out[name] += float(line.rsplit(" ", 1)[1])
    return out


def stalls(m0: dict[str, float], m1: dict[str, float]) -> str:
    """How often the server's event loop was held longer than each bucket bound, and what
    the garbage collector cost, between two scrapes."""

    def delta(key: str) -> float:
        return m1[key] - m0[key]

    probes = delta("livecore_event_loop_lag_seconds_count")
    lag = "livecore_event_loop_lag_seconds_bucket"
    over = [
        f">{float(le) * 1000:.0f} ms {probes - delta(f'{lag}:{le}'):.0f}" for le in _LAG_BUCKETS
    ]
    collections = [
        f"gen{gen} {delta(f'livecore_gc_pause_seconds_count:{gen}'):.0f}"
        f" ({delta(f'livecore_gc_pause_seconds_sum:{gen}') * 1000:.0f} ms)"
        for gen in "012"
    ]
    return f"loop-lag probes {probes:.0f} ({', '.join(over)}); GC {', '.join(collections)}"


@contextlib.contextmanager
def watchdog(seconds: int) -> Iterator[None]:
    """Ends the run (SystemExit) if it lasts longer than `seconds`: every benchmark is bounded."""

    def expire(signum: int, frame: object) -> None:
        raise SystemExit(f"watchdog: the run exceeded {seconds} s")

    previous: Callable[..., Any] | int | None = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
