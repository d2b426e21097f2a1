"""The `livecore` command as an operator runs it: real processes, real databases."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECORE_")}
    env.update(extra)
    return env


def _livecore(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livecore", *args],
        env=env, cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status, resp.read()


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


@pytest.mark.slow
def test_serve_answers_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "var"
    env = _env(LIVECORE_PORT=str(port), LIVECORE_DATA_DIR=str(data_dir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "livecore", "serve"], env=env, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("serve did not come up")
                time.sleep(0.2)
        assert status == 200 and json.loads(body) == {"status": "ok"}
        status, body = _get(f"http://127.0.0.1:{port}/readyz")
        assert json.loads(body)["status"] == "ready"
        pg_pid = _postmaster_pid(data_dir)
        assert psutil.pid_exists(pg_pid)

        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output.decode()
    assert b"Traceback" not in output
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pg_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(pg_pid), "the embedded PostgreSQL outlived the server"


@pytest.mark.slow
def test_serve_closes_a_connection_that_never_finishes_its_headers(
    postgres_dsn: str, tmp_path: Path
) -> None:
    port = free_port()
    env = _env(
        LIVECORE_PORT=str(port), LIVECORE_DATA_DIR=str(tmp_path / "var"),
        LIVECORE_DATABASE_URL=postgres_dsn, LIVECORE_HEADER_TIMEOUT_S="0.5",
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "livecore", "serve"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("serve did not come up")
                time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HT")
            # Far above the configured bound: only a server that never closes exceeds it.
            assert sock.recv(1024) == b""
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    result = _livecore("serve", env=_env(LIVECORE_PORT="not-a-port"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "livecore: configuration error: port: 'not-a-port' is not a valid integer"
    )


def test_unknown_key_in_config_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[auth]\nsesion_ttl_s = 5\n")
    result = _livecore("--config", str(path), "serve", env=_env())
    assert result.returncode == 2
    assert "auth.sesion_ttl_s: unknown setting" in result.stderr
    assert "Traceback" not in result.stderr


def test_user_and_stream_commands_print_json(postgres_dsn: str, tmp_path: Path) -> None:
    env = _env(LIVECORE_DATABASE_URL=postgres_dsn, LIVECORE_DATA_DIR=str(tmp_path))
    email = f"op-{time.monotonic_ns()}@example.com"
    slug = f"cli-{time.monotonic_ns() % 10**9}"
    made = _livecore("user", "create", "--email", email, "--role", "creator", "--json", env=env)
    assert made.returncode == 0, made.stderr
    user = json.loads(made.stdout)
    assert user["role"] == "creator" and len(user["password"]) >= 20

    stream = _livecore("stream", "create", "--owner", email, "--slug", slug, "--json", env=env)
    assert stream.returncode == 0, stream.stderr
    first_key = json.loads(stream.stdout)["stream_key"]

    rotated = _livecore("stream", "rotate-key", slug, "--json", env=env)
    assert rotated.returncode == 0, rotated.stderr
    second_key = json.loads(rotated.stdout)["stream_key"]
    assert second_key != first_key and second_key.startswith("lck_")


def test_user_create_reads_password_from_stdin(postgres_dsn: str, tmp_path: Path) -> None:
    env = _env(LIVECORE_DATABASE_URL=postgres_dsn, LIVECORE_DATA_DIR=str(tmp_path))
    email = f"stdin-{time.monotonic_ns()}@example.com"
    made = _livecore(
        "user", "create", "--email", email, "--password-stdin", "--json",
        env=env, stdin="a long enough passphrase\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "password" not in json.loads(made.stdout)


def test_cli_errors_are_one_line(postgres_dsn: str, tmp_path: Path) -> None:
    env = _env(LIVECORE_DATABASE_URL=postgres_dsn, LIVECORE_DATA_DIR=str(tmp_path))
    result = _livecore("stream", "rotate-key", "no-such-stream", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == "livecore: no stream with slug no-such-stream"
    weak = _livecore(
        "user", "create", "--email", "x@example.com", "--password-stdin", env=env, stdin="short\n"
    )
    assert weak.returncode == 1
    assert "password must be at least" in weak.stderr


def test_ledger_check_reports_a_balanced_ledger(postgres_dsn: str, tmp_path: Path) -> None:
    env = _env(LIVECORE_DATABASE_URL=postgres_dsn, LIVECORE_DATA_DIR=str(tmp_path))
    checked = _livecore("ledger", "check", "--json", env=env)
    assert checked.returncode == 0, checked.stderr
    result = json.loads(checked.stdout)
    assert result["ok"] is True and result["unbalanced_transactions"] == 0
    text = _livecore("ledger", "check", env=env)
    assert text.stdout.startswith("ledger balanced:")


def test_a_slug_with_a_trailing_newline_is_refused_in_one_line(
    postgres_dsn: str, tmp_path: Path
) -> None:
    env = _env(LIVECORE_DATABASE_URL=postgres_dsn, LIVECORE_DATA_DIR=str(tmp_path))
    email = f"nl-{time.monotonic_ns()}@example.com"
    made = _livecore("user", "create", "--email", email, "--role", "creator", env=env)
    assert made.returncode == 0, made.stderr
    # `$` in a regular expression also matches before a final newline; fullmatch does not.
    stream = _livecore("stream", "create", "--owner", email, "--slug", "abc-nl\n", env=env)
    assert stream.returncode == 1
    assert "Traceback" not in stream.stderr
    assert stream.stderr.startswith("livecore: slug must be 3-40 lowercase letters")


def test_prometheus_token_is_the_deployments_and_needs_its_secret_key(tmp_path: Path) -> None:
    from livecore.cluster.scrape_targets import discovery_token

    data_dir = tmp_path / "var"
    # Not made here: a server started later would make one of its own.
    missing = _livecore("prometheus-token", env=_env(LIVECORE_DATA_DIR=str(data_dir)))
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "livecore: no secret key yet: set LIVECORE_SECRET_KEY or start serve once"
    )
    assert not data_dir.exists()
    configured = _env(LIVECORE_DATA_DIR=str(data_dir), LIVECORE_SECRET_KEY="k" * 40)
    given = _livecore("prometheus-token", env=configured)
    assert given.returncode == 0, given.stderr
    assert given.stdout == discovery_token(b"k" * 40) + "\n"
    data_dir.mkdir()
    (data_dir / "secret_key").write_bytes(b"stored-key\n")
    stored = _livecore("prometheus-token", env=_env(LIVECORE_DATA_DIR=str(data_dir)))
    assert stored.stdout == discovery_token(b"stored-key") + "\n"
