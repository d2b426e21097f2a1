"""`livecore user 2fa-off EMAIL`: the operator's way back in for an account whose phone and
recovery codes are both lost."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from livecore.auth import totp
from livecore.store import Database
from livecore.store.audit import AuditLog
from livecore.store.twofactor import TwoFactorSecrets
from tests.cli.test_cli import _env, _livecore


async def _turn_on(dsn: str, user_id: int) -> None:
    db = await Database.connect(dsn, max_size=1)
    try:
        secrets = TwoFactorSecrets(db)
        assert await secrets.start(user_id, totp.new_secret())
        assert await secrets.enable(user_id, 1, [b"h" * 32])
    finally:
        await db.close()


async def _state(dsn: str, user_id: int) -> tuple[bool, list[str]]:
    db = await Database.connect(dsn, max_size=1)
    try:
        on = await TwoFactorSecrets(db).enabled(user_id)
        return on, await AuditLog(db).actions_for("user", user_id)
    finally:
        await db.close()


def test_operator_turns_off_an_accounts_two_factor(postgres_dsn: str, tmp_path: Path) -> None:
    env = _env(LIVECORE_DATABASE_URL=postgres_dsn, LIVECORE_DATA_DIR=str(tmp_path))
    email = f"lost-{time.monotonic_ns()}@example.com"
    made = _livecore("user", "create", "--email", email, "--json", env=env)
    assert made.returncode == 0, made.stderr
    user_id = json.loads(made.stdout)["id"]
    asyncio.run(_turn_on(postgres_dsn, user_id))

    off = _livecore("user", "2fa-off", email, env=env)
    assert off.returncode == 0, off.stderr
    assert off.stdout == f"two-factor authentication turned off for {email}\n"
    on, actions = asyncio.run(_state(postgres_dsn, user_id))
    assert not on
    assert "user.2fa_reset" in actions
    again = _livecore("user", "2fa-off", email, env=env)
    assert again.stdout == f"two-factor authentication was off for {email}\n"

    unknown = _livecore("user", "2fa-off", "nobody@example.com", env=env)
    assert unknown.returncode != 0
    assert "no account with email nobody@example.com" in unknown.stderr
