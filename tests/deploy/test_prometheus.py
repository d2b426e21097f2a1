"""Debian's Prometheus finds every process of `livecore serve --processes 2` through the
nodes' HTTP service discovery (/metrics/targets, with the token `livecore prometheus-token`
prints) and scrapes each one's own /metrics; the endpoint refuses requests without the token."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.serve_box import ROOT, box_env, clean_up, ready, start
from tests.support.services import free_port

Json = dict[str, Any]


def _token(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "livecore", "prometheus-token"], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _start_prometheus(
    directory: Path, config: str, token: str
) -> tuple[str, subprocess.Popen[bytes]]:
    """Prometheus on a free loopback port with `config` (the token beside it); its URL."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (bin/test installs Debian's prometheus)"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "prometheus.yml").write_text(config)
    (directory / "livecore-token").write_text(token + "\n")
    port = free_port()
    with (directory / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return f"http://127.0.0.1:{port}", proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _targets(http: aiohttp.ClientSession, base: str, token: str) -> list[Json]:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.get(f"{base}/metrics/targets", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/json"
        groups: list[Json] = await resp.json()
        return groups


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_prometheus_discovers_and_scrapes_every_process_and_the_token_is_required(
    tmp_path: Path,
) -> None:
    data_dir, port = tmp_path / "var", free_port()
    env = box_env(data_dir, port)
    proc = await asyncio.to_thread(start, env, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            await ready(http, base, proc)  # the server has made its secret key
            token = await asyncio.to_thread(_token, env)
            # Any process answers for both, once both are in the directory.
            async with asyncio.timeout(180):
                while True:
                    assert proc.poll() is None, "serve exited while starting"
                    with contextlib.suppress(aiohttp.ClientError, AssertionError):
                        if len(groups := await _targets(http, base, token)) == 2:
                            break
                    await asyncio.sleep(0.2)
            nodes = {g["labels"]["node"]: g for g in groups}
            assert sorted(n.rsplit("/", 1)[1] for n in nodes) == ["1", "2"]
            addresses = [g["targets"] for g in groups]
            assert all(len(t) == 1 for t in addresses)
            assert len({t[0] for t in addresses}) == 2
            assert f"127.0.0.1:{port}" not in {t[0] for t in addresses}  # their own ports
            for group in groups:
                assert group["labels"]["__meta_livecore_draining"] == "false"
                assert group["labels"]["__metrics_path__"] == "/metrics"

            # Without the token, or with another one: refused, and nothing listed.
            wrong = {"Authorization": "Bearer " + "0" * len(token)}
            basic = {"Authorization": "Basic cHJvbWV0aGV1czpzZWNyZXQ="}
            for headers in ({}, wrong, basic):
                async with http.get(f"{base}/metrics/targets", headers=headers) as resp:
                    assert resp.status == 401, headers
                    assert resp.headers["WWW-Authenticate"] == "Bearer"
                    body = await resp.json()
                    assert body["error"]["code"] == "unauthorized"

            config = (
                "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
                "scrape_configs:\n"
                "  - job_name: livecore\n"
                "    http_sd_configs:\n"
                f"      - url: {base}/metrics/targets\n"
                "        refresh_interval: 1s\n"
                "        authorization: {type: Bearer, credentials_file: livecore-token}\n"
            )
            prometheus, prom = await asyncio.to_thread(
                _start_prometheus, tmp_path / "prometheus", config, token
            )
            try:
                async with asyncio.timeout(120):
                    while True:
                        assert prom.poll() is None, "prometheus exited"
                        with contextlib.suppress(aiohttp.ClientError):
                            url = f"{prometheus}/api/v1/targets?state=active"
                            async with http.get(url) as resp:
                                if resp.status == 200:
                                    active = (await resp.json())["data"]["activeTargets"]
                                    if len(active) == 2 and all(
                                        t["health"] == "up" for t in active
                                    ):
                                        break
                        await asyncio.sleep(0.5)
            finally:
                await asyncio.to_thread(_stop, prom)
            # Each process, at its own address, with its node id and the meta label.
            assert {t["labels"]["node"] for t in active} == set(nodes)
            for target in active:
                group = nodes[target["labels"]["node"]]
                assert target["labels"]["instance"] == group["targets"][0]
                assert target["scrapeUrl"] == f"http://{group['targets'][0]}/metrics"
                assert target["discoveredLabels"]["__meta_livecore_draining"] == "false"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 120) == 0
    finally:
        await asyncio.to_thread(clean_up, proc, data_dir, [])
