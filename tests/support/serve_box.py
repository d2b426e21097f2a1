"""`livecore serve --processes 2` on the embedded defaults, as an operator starts it, for the
tests that need a whole box: its environment, starting it, waiting until it answers, and
cleaning up after a failure (by PID: only what this box started)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


def box_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECORE_")}
    env.update(
        LIVECORE_DATA_DIR=str(data_dir), LIVECORE_PORT=str(port),
        LIVECORE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        LIVECORE_SFU__ICE_HOST_ADDRESSES="127.0.0.1", LIVECORE_HLS__RENDITIONS="source",
    )  # fmt: skip
    return env


def create_admin(env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "livecore", "user", "create", "--email",
               "root@example.com", "--role", "admin", "--password-stdin"]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=ROOT, input=PASSWORD + "\n", text=True,
                          capture_output=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "livecore", "serve", "--processes", "2"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def is_alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def describe(process: psutil.Process) -> str:
    try:
        return f"{process.name()} {' '.join(process.cmdline())}"
    except psutil.Error:
        return ""


def clean_up(proc: subprocess.Popen[bytes], data_dir: Path, ours: list[psutil.Process]) -> None:
    """After a failure: stop serve as an operator would, then end what it left, by PID."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    left = [p for p in ours if is_alive(p)]
    for pid_file in (data_dir / "postgres" / "postmaster.pid", data_dir / "run" / "redis.pid"):
        try:
            process = psutil.Process(int(pid_file.read_text().split()[0]))
        except (FileNotFoundError, ValueError, IndexError, psutil.Error):
            continue
        if is_alive(process) and str(data_dir) in describe(process):  # this test's own
            left.append(process)
    for process in left:
        process.kill()


async def ready(http: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes]) -> None:
    async with asyncio.timeout(120):
        while True:
            assert proc.poll() is None, "serve exited while starting"
            try:
                async with http.get(f"{base}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
