"""`livecore stream rotate-key` run by an operator while the stream is live on a running
node: the command reaches that node over its Redis bus and the publisher is cut off."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.chat.conftest import user
from tests.cli.test_cli import ROOT
from tests.conftest import MakeClient, create_stream, wait_state
from tests.streams.test_end_now import go_live, server_closed, whip_refusal
from tests.support import media
from tests.support.rtc import publish
from tests.support.serve_box import PASSWORD, box_env, clean_up, ready, start
from tests.support.services import free_port


async def _livecore(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """The command in its own process, awaited without blocking the node under test."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "livecore", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECORE_")}
    env.update(LIVECORE_DATA_DIR=str(tmp_path / "cli"), **settings)
    return env


async def test_rotating_a_live_streams_key_cuts_the_publisher_off(
    make_client: MakeClient, dsn: str, redis_url: str, tmp_path: Path
) -> None:
    client = await make_client(redis_url=redis_url)
    ann = await user(client, "ann", creator=True)
    old_key = await create_stream(client, ann["token"], "ann-live")
    pub = await go_live(client, "ann-live", old_key)
    try:
        env = _env(tmp_path, LIVECORE_DATABASE_URL=dsn, LIVECORE_REDIS_URL=redis_url)
        code, out, err = await _livecore("stream", "rotate-key", "ann-live", env=env)
        assert code == 0, err
        await server_closed(pub.pc)
        await wait_state(client, "ann-live", "offline")
        assert "the live session published with the old key was ended" in out
        assert (await whip_refusal(client, "ann-live", old_key))[0] == 401
        new_key = out.split("no longer works): ", 1)[1].split()[0]
        assert (await whip_refusal(client, "ann-live", new_key))[0] == 201
    finally:
        await pub.close()


async def test_without_redis_the_command_says_the_session_was_not_ended(
    make_client: MakeClient, dsn: str, tmp_path: Path
) -> None:
    client = await make_client()
    ann = await user(client, "ann", creator=True)
    old_key = await create_stream(client, ann["token"], "ann-live")
    pub = await go_live(client, "ann-live", old_key)
    try:
        env = _env(tmp_path, LIVECORE_DATABASE_URL=dsn)
        code, out, err = await _livecore("stream", "rotate-key", "ann-live", "--json", env=env)
        assert code == 1, err
        answer = json.loads(out)
        assert (answer["was_live"], answer["live_session_ended"]) == (True, False)
        # The old key is refused all the same.
        assert (await whip_refusal(client, "ann-live", old_key))[0] == 401
    finally:
        await pub.close()


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_on_a_box_of_processes_the_command_reaches_them_through_the_private_redis(
    tmp_path: Path,
) -> None:
    """`serve --processes 2` without redis_url: the command finds the private Redis in the
    data dir, as the processes do."""
    data_dir, port = tmp_path / "var", free_port()
    env = box_env(data_dir, port)
    proc = await asyncio.to_thread(start, env, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            await ready(http, base, proc)
            sign_up = {"email": "cook@example.com", "password": PASSWORD,
                       "display_name": "Cook", "creator": True}  # fmt: skip
            async with http.post(f"{base}/api/v1/auth/register", json=sign_up) as resp:
                assert resp.status == 201, await resp.text()
                token = (await resp.json())["token"]
            headers = {"Authorization": f"Bearer {token}"}
            made = {"slug": "box-live"}
            async with http.post(f"{base}/api/v1/streams", json=made, headers=headers) as resp:
                assert resp.status == 201, await resp.text()
                old_key = (await resp.json())["stream_key"]
            pub = await publish(http, f"{base}/whip/box-live", old_key, media.clip())
            try:
                await _until_state(http, base, "box-live", "live")
                code, out, err = await _livecore("stream", "rotate-key", "box-live", env=env)
                assert code == 0, (out, err)
                await server_closed(pub.pc)
                await _until_state(http, base, "box-live", "offline")
                assert "the live session published with the old key was ended" in out
                with pytest.raises(AssertionError, match="WHIP refused: 401"):
                    await publish(http, f"{base}/whip/box-live", old_key, media.clip())
            finally:
                await pub.close()
    finally:
        await asyncio.to_thread(clean_up, proc, data_dir, [])


async def _until_state(http: aiohttp.ClientSession, base: str, slug: str, state: str) -> None:
    async with asyncio.timeout(60):
        while True:
            async with http.get(f"{base}/api/v1/streams/{slug}") as resp:
                if (await resp.json())["stream"]["state"] == state:
                    return
            await asyncio.sleep(0.2)
