"""The embedded PostgreSQL as an operator meets it: killed nodes, restarts, CLI commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECORE_")}
    env.update(LIVECORE_DATA_DIR=str(data_dir), **extra)
    return env


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def _is_postgres_of(pid: int, data_dir: Path) -> bool:
    try:
        process = psutil.Process(pid)
        return process.name() == "postgres" and (
            Path(process.cwd()).resolve() == (data_dir / "postgres").resolve()
        )
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def _wait_gone(pid: int, data_dir: Path) -> bool:
    # pg_ctl stop has returned before serve exits; this only covers reaping.
    deadline = time.monotonic() + 10
    while _is_postgres_of(pid, data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _is_postgres_of(pid, data_dir)


def _ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                assert json.loads(resp.read())["status"] == "ready"
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("serve did not come up")
            time.sleep(0.2)


@contextmanager
def _serve(data_dir: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "livecore", "serve"],
            env=_env(data_dir, LIVECORE_PORT=str(port)), cwd=ROOT,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_restart_after_kill_adopts_and_then_stops_the_embedded_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    port = free_port()
    started: set[int] = set()  # postgres processes started by this test's servers
    try:
        with _serve(data_dir, port, tmp_path / "first.log") as first:
            _ready(port, first)
            started.add(_postmaster_pid(data_dir))
            first.kill()  # SIGKILL: nothing of livecore's shutdown runs
            first.wait()
        (orphan,) = started
        assert _is_postgres_of(orphan, data_dir), "kill -9 took the database with it"

        with _serve(data_dir, port, tmp_path / "second.log") as second:
            _ready(port, second)
            started.add(_postmaster_pid(data_dir))
            # A one-shot command beside the running node joins its database and leaves it
            # running, and says so rather than "stopped".
            beside = subprocess.run(
                [sys.executable, "-m", "livecore", "ledger", "check", "--json"],
                env=_env(data_dir, LIVECORE_LOG_LEVEL="debug"), cwd=ROOT,
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert beside.returncode == 0, beside.stderr
            assert f"embedded PostgreSQL left running (pid {_postmaster_pid(data_dir)})" in (
                beside.stderr
            )
            assert str(second.pid) in beside.stderr
            assert "embedded PostgreSQL stopped" not in beside.stderr
            _ready(port, second)

            second.send_signal(signal.SIGTERM)
            second.wait(timeout=60)
        log = (tmp_path / "second.log").read_text()
        assert second.returncode == 0, log
        assert f"was left running by processes [{first.pid}]" in log
        assert "embedded PostgreSQL stopped" in log
        for pid in started:
            assert _wait_gone(pid, data_dir), f"postgres {pid} outlived the restarted node"
    finally:
        for pid in started:
            if _is_postgres_of(pid, data_dir):
                psutil.Process(pid).terminate()


def test_one_shot_command_does_not_announce_the_embedded_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    result = subprocess.run(
        [sys.executable, "-m", "livecore", "ledger", "check", "--json"],
        env=_env(data_dir), cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
    assert "embedded PostgreSQL" not in result.stderr
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


def test_stale_postmaster_pid_naming_another_process_is_not_taken_for_the_server(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "var"
    check = [sys.executable, "-m", "livecore", "ledger", "check", "--json"]
    first = subprocess.run(check, env=_env(data_dir), cwd=ROOT, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert first.returncode == 0, first.stderr
    pgdata = data_dir / "postgres"
    # What a reboot or a kill can leave: postmaster.pid naming a PID that now belongs to
    # another process (here one this test starts). Taken for the server, it would be
    # signalled to stop ("pg_ctl stop") when the command ends.
    bystander = subprocess.Popen(["sleep", "120"])
    try:
        (pgdata / "postmaster.pid").write_text(
            f"{bystander.pid}\n{pgdata}\n{int(time.time())}\n5432\n{pgdata}\n\n"
            "  5432001     0\nready\n"
        )
        second = subprocess.run(check, env=_env(data_dir), cwd=ROOT, capture_output=True,
                                text=True, timeout=60)  # fmt: skip
        assert bystander.poll() is None, "livecore stopped a process that is not its database"
    finally:
        bystander.kill()
        bystander.wait()
    assert second.returncode == 0, second.stderr
    assert f"names pid {bystander.pid}, not a postgres of {pgdata}; removed" in second.stderr
    assert json.loads(second.stdout)["ok"] is True
    assert not (pgdata / "postmaster.pid").exists()
