"""`livecore stream rotate-key` run by an operator while the stream is live on a running
node: the command reaches that node over its Redis bus and the publisher is cut off."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.chat.conftest import user
from tests.cli.test_cli import ROOT
from tests.conftest import MakeClient, create_stream, wait_state
from tests.streams.test_end_now import go_live, server_closed, whip_refusal


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
