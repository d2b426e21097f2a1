"""Two-factor secrets are encrypted at rest: the database holds no usable secret, a row
copied onto another account or altered does not decrypt there, secrets stored before
encryption keep working and are encrypted when a node starts, and a replaced secret key
gives a 2FA answer an admin can act on (never a 500, never a login without a code).
"""

from __future__ import annotations

import logging

import pytest

from livecore.store import Database
from livecore.store.audit import AuditLog
from tests.auth.test_two_factor import EMAIL, code, code_step, password_step, turn_on
from tests.conftest import Client, MakeClient, bearer, register

BOB = "bob@example.com"


async def _stored(db: Database, user_id: int) -> str:
    value = await db.pool.fetchval("SELECT secret FROM two_factor WHERE user_id = $1", user_id)
    assert isinstance(value, str)
    return value


async def _set_stored(db: Database, user_id: int, value: str) -> None:
    await db.pool.execute("UPDATE two_factor SET secret = $2 WHERE user_id = $1", user_id, value)


async def test_the_stored_value_is_not_the_secret(client: Client, db: Database) -> None:
    ann = await register(client, EMAIL)
    secret, _ = await turn_on(client, ann["token"])
    stored = await _stored(db, ann["user"]["id"])
    assert stored.startswith("v1:")
    assert secret not in stored and secret.lower() not in stored.lower()
    got, body = await code_step(client, await password_step(client), code(secret, steps=1))
    assert got == 200, body


async def test_a_row_copied_to_another_account_does_not_decrypt(
    client: Client, db: Database
) -> None:
    ann = await register(client, EMAIL)
    bob = await register(client, BOB)
    ann_secret, _ = await turn_on(client, ann["token"])
    await turn_on(client, bob["token"])
    # Someone with write access to the table puts ann's secret (whose codes they know) on bob.
    await _set_stored(db, bob["user"]["id"], await _stored(db, ann["user"]["id"]))
    got, body = await code_step(client, await password_step(client, BOB), code(ann_secret, steps=1))
    assert got == 409, body
    assert body["error"]["code"] == "two_factor_unreadable"
    assert "livecore user 2fa-off" in body["error"]["message"]


async def test_a_tampered_value_is_refused(client: Client, db: Database) -> None:
    ann = await register(client, EMAIL)
    secret, _ = await turn_on(client, ann["token"])
    stored = await _stored(db, ann["user"]["id"])
    flipped = "A" if stored[-5] != "A" else "B"
    await _set_stored(db, ann["user"]["id"], stored[:-5] + flipped + stored[-4:])
    got, body = await code_step(client, await password_step(client), code(secret, steps=1))
    assert got == 409, body
    assert body["error"]["code"] == "two_factor_unreadable"


async def test_plaintext_secrets_keep_working_and_are_encrypted_at_start(
    make_client: MakeClient, db: Database
) -> None:
    client = await make_client()
    ann = await register(client, EMAIL)
    bob = await register(client, BOB)
    ann_secret, _ = await turn_on(client, ann["token"])
    bob_secret, _ = await turn_on(client, bob["token"])
    # As a node of an older version stored them.
    await _set_stored(db, ann["user"]["id"], ann_secret)
    await _set_stored(db, bob["user"]["id"], bob_secret)

    upgraded = await make_client()  # a node starting encrypts every secret left in plaintext
    plain = await db.pool.fetchval(
        "SELECT count(*) FROM two_factor WHERE NOT starts_with(secret, 'v1:')"
    )
    assert plain == 0
    assert ann_secret not in await _stored(db, ann["user"]["id"])
    assert bob_secret not in await _stored(db, bob["user"]["id"])
    got, body = await code_step(upgraded, await password_step(upgraded), code(ann_secret, steps=1))
    assert got == 200, body
    got, body = await code_step(client, await password_step(client, BOB), code(bob_secret, steps=1))
    assert got == 200, body


async def test_a_secret_written_in_clear_after_start_is_refused(
    client: Client, db: Database
) -> None:
    """Someone who can write the table cannot put a secret of their own there in clear."""
    ann = await register(client, EMAIL)
    await turn_on(client, ann["token"])
    theirs = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    await _set_stored(db, ann["user"]["id"], theirs)
    got, body = await code_step(client, await password_step(client), code(theirs, steps=1))
    assert got == 409, body
    assert body["error"]["code"] == "two_factor_unreadable"


async def test_a_replaced_secret_key_is_a_2fa_failure_the_admin_can_act_on(
    make_client: MakeClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    ann = await register(client, EMAIL)
    secret, _ = await turn_on(client, ann["token"])
    replaced = await make_client(secret_key="another-secret-key-another-secret-key")
    with caplog.at_level(logging.ERROR, logger="livecore.auth.twofactor"):
        got, body = await code_step(replaced, await password_step(replaced), code(secret, steps=1))
    assert got == 409, body
    assert body["error"]["code"] == "two_factor_unreadable"
    assert "token" not in body
    assert f"user {ann['user']['id']} does not decrypt" in caplog.text
    actions = await AuditLog(db).actions_for("user", ann["user"]["id"])
    assert "user.login_2fa_failed" in actions
    # The password alone still does not log in.
    assert await password_step(replaced)
    # The other code steps answer the same, not 500.
    resp = await replaced.post(
        "/api/v1/me/2fa/disable", json={"code": code(secret, steps=1)}, headers=bearer(ann["token"])
    )
    assert resp.status == 409, await resp.text()
    assert (await resp.json())["error"]["code"] == "two_factor_unreadable"
