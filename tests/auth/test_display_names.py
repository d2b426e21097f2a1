"""Display names follow the chat's text rules and are unique as people read them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from livecore.appkeys import AUTH
from livecore.store import Database
from tests.conftest import Client

PASSWORD = "correct horse battery"
TAKEN = {"error": {"code": "conflict", "message": "this display name is taken: choose another"}}


async def _register(client: Client, email: str, name: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "display_name": name},
    )
    body: dict[str, Any] = await resp.json()
    client.session.cookie_jar.clear()
    return resp.status, body


@pytest.mark.parametrize(
    "name", ["\u3164", "\u2800\u2800", "\u115f\u1160", "\uffa0", "\u3164 \u3164", "\u0301"]
)
async def test_register_refuses_an_invisible_name(client: Client, name: str) -> None:
    status, body = await _register(client, "ann@example.com", name)
    assert status == 422, repr(name)
    assert body["error"]["fields"] == {"display_name": "must contain a visible character"}


@pytest.mark.parametrize(
    "name", ["\u202eevil", "Ann\u202b", "Ann\u2066x", "Ann\u2067x", "Ann\u2068x", "Ann\u2028x"]
)
async def test_register_refuses_bidi_controls_in_a_name(client: Client, name: str) -> None:
    status, body = await _register(client, "ann@example.com", name)
    assert status == 422, repr(name)
    assert body["error"]["fields"] == {"display_name": "must not contain control characters"}


@pytest.mark.parametrize(
    "same",
    ["Ann", "ann", "ANN", "  Ann  ", "\uff21\uff4e\uff4e", "Ann\u3164", "\U0001d400nn"],
)
async def test_register_refuses_another_users_name(client: Client, same: str) -> None:
    assert (await _register(client, "ann@example.com", "Ann"))[0] == 201
    status, body = await _register(client, "bob@example.com", same)
    assert (status, body) == (409, TAKEN), repr(same)


async def test_names_that_differ_as_read_are_both_accepted(client: Client) -> None:
    for n, name in enumerate(["Ann", "Anne", "Ann B", "José", "Jose", "ann.", "Анна"]):
        status, body = await _register(client, f"u{n}@example.com", name)
        assert status == 201, (name, body)


async def test_name_is_stored_in_nfkc(client: Client) -> None:
    status, body = await _register(client, "ann@example.com", " \uff21\uff4e\uff4e ")
    assert status == 201
    assert body["user"]["display_name"] == "Ann"


async def test_the_database_refuses_a_name_registered_twice_at_once(client: Client) -> None:
    results = await asyncio.gather(
        *(_register(client, f"u{n}@example.com", "Same Name") for n in range(4))
    )
    assert sorted(status for status, _ in results) == [201, 409, 409, 409]


async def test_accounts_from_before_unique_names_get_their_keys(
    client: Client, db: Database
) -> None:
    # Accounts made before the name_key migration (or by an older node): no name key, and two of
    # them already share a name. The oldest keeps the key; the other keeps its name.
    for email, name in [("zoe@example.com", "Zoë"), ("zoe2@example.com", "ZOË"),
                        ("max@example.com", "Max")]:  # fmt: skip
        await db.pool.execute(
            "INSERT INTO users (email, display_name, password_hash, role)"
            " VALUES ($1, $2, 'x', 'viewer')",
            email,
            name,
        )
    assert await client.app[AUTH].fill_name_keys(batch=2) == (2, 1)  # given, kept
    rows = await db.pool.fetch("SELECT email, name_key FROM users ORDER BY id")
    assert [(r["email"], r["name_key"]) for r in rows] == [
        ("zoe@example.com", "zoë"), ("zoe2@example.com", None), ("max@example.com", "max"),
    ]  # fmt: skip
    assert await _register(client, "new@example.com", "zoë") == (409, TAKEN)
    assert await _register(client, "new@example.com", "MAX") == (409, TAKEN)
    assert (await _register(client, "new@example.com", "Zoey"))[0] == 201


def test_cli_says_the_name_is_taken(dsn: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECORE_")}
    env.update(LIVECORE_DATABASE_URL=dsn, LIVECORE_DATA_DIR=str(tmp_path))

    def create(email: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "livecore", "user", "create", "--email", email],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    assert create("ann@example.com").returncode == 0
    # Named after the email by default: "ann" again.
    result = create("ann@example.org")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "livecore: another account is named 'ann': give one with --display-name"
    )
