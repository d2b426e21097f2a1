"""Two-factor secrets (TOTP) and recovery codes, one set per user.

The secret is kept as the caller gives it: sealed (encrypted, livecore.auth.secretbox) since
rows written before that are sealed at start (`plaintext` and `replace_secret`). Recovery
codes are kept only as keyed hashes made by the caller. Every "use once" rule is a single
conditional UPDATE, so two requests racing with one code cannot both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from livecore.store.db import Connection, Database


@dataclass(frozen=True, slots=True)
class TwoFactor:
    user_id: int
    secret: str  # as stored: sealed, or base32 text in a row from before sealing
    enabled_at: datetime | None  # None: enrolment started, waiting for its first code
    last_step: int | None  # the newest TOTP time step whose code was accepted
    recovery_left: int


class TwoFactorSecrets:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: int) -> TwoFactor | None:
        row = await self._db.pool.fetchrow(
            "SELECT user_id, secret, enabled_at, last_step,"
            " (SELECT count(*) FROM two_factor_recovery r"
            "  WHERE r.user_id = t.user_id AND r.used_at IS NULL) AS recovery_left"
            " FROM two_factor t WHERE user_id = $1",
            user_id,
        )
        if row is None:
            return None
        return TwoFactor(
            row["user_id"], row["secret"], row["enabled_at"], row["last_step"],
            row["recovery_left"],
        )  # fmt: skip

    async def enabled(self, user_id: int) -> bool:
        found = await self._db.pool.fetchval(
            "SELECT 1 FROM two_factor WHERE user_id = $1 AND enabled_at IS NOT NULL", user_id
        )
        return found is not None

    async def start(self, user_id: int, secret: str) -> bool:
        """Begin (or begin again) an enrolment with a new secret; False when 2FA is on."""
        row = await self._db.pool.fetchrow(
            "INSERT INTO two_factor (user_id, secret) VALUES ($1, $2)"
            " ON CONFLICT (user_id) DO UPDATE"
            " SET secret = EXCLUDED.secret, last_step = NULL, created_at = now()"
            " WHERE two_factor.enabled_at IS NULL"
            " RETURNING user_id",
            user_id,
            secret,
        )
        return row is not None

    async def plaintext(self, prefix: str) -> list[tuple[int, str]]:
        """(user id, secret) of every row whose secret does not start with `prefix`."""
        rows = await self._db.pool.fetch(
            "SELECT user_id, secret FROM two_factor WHERE NOT starts_with(secret, $1)", prefix
        )
        return [(r["user_id"], r["secret"]) for r in rows]

    async def replace_secret(self, user_id: int, old: str, new: str) -> bool:
        """Store `new` in place of `old`; False when the row changed meanwhile (a new
        enrolment, 2FA turned off, another node sealing it first)."""
        done = await self._db.pool.execute(
            "UPDATE two_factor SET secret = $3 WHERE user_id = $1 AND secret = $2",
            user_id,
            old,
            new,
        )
        return done != "UPDATE 0"

    async def enable(self, user_id: int, step: int, recovery_hashes: Sequence[bytes]) -> bool:
        """Turn 2FA on after a first good code (its `step` is used up) and store the new
        recovery codes; False when no enrolment waits (already on, or never started)."""
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE two_factor SET enabled_at = now(), last_step = $2"
                " WHERE user_id = $1 AND enabled_at IS NULL RETURNING user_id",
                user_id,
                step,
            )
            if row is None:
                return False
            await _replace_recovery(conn, user_id, recovery_hashes)
        return True

    async def use_step(self, user_id: int, step: int) -> bool:
        """Spend the code of time step `step`: True once, and only when no code of this or
        a later step was accepted before (a replayed or older code is refused)."""
        row = await self._db.pool.fetchrow(
            "UPDATE two_factor SET last_step = $2"
            " WHERE user_id = $1 AND enabled_at IS NOT NULL"
            " AND (last_step IS NULL OR last_step < $2) RETURNING user_id",
            user_id,
            step,
        )
        return row is not None

    async def use_recovery(self, user_id: int, code_hash: bytes) -> bool:
        """Spend a recovery code: True once per code."""
        row = await self._db.pool.fetchrow(
            "UPDATE two_factor_recovery SET used_at = now()"
            " WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL"
            " AND EXISTS (SELECT 1 FROM two_factor t"
            "  WHERE t.user_id = $1 AND t.enabled_at IS NOT NULL)"
            " RETURNING user_id",
            user_id,
            code_hash,
        )
        return row is not None

    async def replace_recovery(self, user_id: int, recovery_hashes: Sequence[bytes]) -> None:
        """Forget every recovery code of the user (used or not) and store these."""
        async with self._db.transaction() as conn:
            await _replace_recovery(conn, user_id, recovery_hashes)

    async def disable(self, user_id: int) -> bool:
        """Turn 2FA off: the secret and the recovery codes are deleted. False when off."""
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM two_factor_recovery WHERE user_id = $1", user_id)
            done = await conn.execute("DELETE FROM two_factor WHERE user_id = $1", user_id)
        return done != "DELETE 0"


async def _replace_recovery(
    conn: Connection, user_id: int, recovery_hashes: Sequence[bytes]
) -> None:
    await conn.execute("DELETE FROM two_factor_recovery WHERE user_id = $1", user_id)
    await conn.executemany(
        "INSERT INTO two_factor_recovery (user_id, code_hash) VALUES ($1, $2)",
        [(user_id, h) for h in recovery_hashes],
    )
