"""Users and their password-reset tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from livecore.store.db import Database, unique_violation

Role = Literal["viewer", "creator", "admin"]

_COLUMNS = "id, email, display_name, role, created_at"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    display_name: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    user: User
    password_hash: str
    two_factor: bool = False  # two-factor authentication is on: a login needs a code too


def _user(row: asyncpg.Record) -> User:
    return User(row["id"], row["email"], row["display_name"], row["role"], row["created_at"])


class Users:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, email: str, display_name: str, name_key: str, password_hash: str, role: Role
    ) -> User:
        """Insert a user; raises UniqueViolation when the email is taken (in any case,
        constraint "users_email_key") or another user's name has this key ("users_name_key")."""
        with unique_violation():
            row = await self._db.pool.fetchrow(
                f"INSERT INTO users (email, display_name, name_key, password_hash, role)"
                f" VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}",
                email,
                display_name,
                name_key,
                password_hash,
                role,
            )
        assert row is not None
        return _user(row)

    async def without_name_key(self, after_id: int, limit: int) -> list[tuple[int, str]]:
        """(id, display name) of users with no name key and an id above `after_id`."""
        rows = await self._db.pool.fetch(
            "SELECT id, display_name FROM users WHERE name_key IS NULL AND id > $1"
            " ORDER BY id LIMIT $2",
            after_id,
            limit,
        )
        return [(row["id"], row["display_name"]) for row in rows]

    async def set_name_keys(self, keys: Sequence[tuple[int, str]]) -> int:
        """Give each (user id, key) its key unless another user holds it; returns how many
        were set. Of two users in `keys` with one key, the first gets it."""
        sql = (
            "UPDATE users u SET name_key = v.key"
            " FROM unnest($1::bigint[], $2::text[]) AS v(id, key)"
            " WHERE u.id = v.id AND u.name_key IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM users o WHERE o.name_key = v.key)"
        )
        try:
            done = await self._db.pool.execute(sql, [k[0] for k in keys], [k[1] for k in keys])
            return int(done.split()[-1])
        except asyncpg.UniqueViolationError:
            pass  # one key twice in `keys`, or an account made meanwhile: one at a time
        count = 0
        for user_id, key in keys:
            try:
                count += int((await self._db.pool.execute(sql, [user_id], [key])).split()[-1])
            except asyncpg.UniqueViolationError:
                continue
        return count

    async def get(self, user_id: int) -> User | None:
        row = await self._db.pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)
        return _user(row) if row else None

    async def get_many(self, user_ids: Sequence[int]) -> list[User | None]:
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM users WHERE id = ANY($1::bigint[])", list(user_ids)
        )
        found = {row["id"]: _user(row) for row in rows}
        return [found.get(user_id) for user_id in user_ids]

    async def by_email(self, email: str) -> User | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM users WHERE lower(email) = lower($1)", email
        )
        return _user(row) if row else None

    async def by_name_key(self, key: str) -> User | None:
        """The user whose display name reads as `key` (livecore.text.name_key)."""
        row = await self._db.pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE name_key = $1", key)
        return _user(row) if row else None

    async def credentials(self, email: str) -> Credentials | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS}, password_hash, EXISTS (SELECT 1 FROM two_factor t"
            " WHERE t.user_id = users.id AND t.enabled_at IS NOT NULL) AS two_factor"
            " FROM users WHERE lower(email) = lower($1)",
            email,
        )
        return Credentials(_user(row), row["password_hash"], row["two_factor"]) if row else None

    async def password_hash(self, user_id: int) -> str | None:
        value = await self._db.pool.fetchval(
            "SELECT password_hash FROM users WHERE id = $1", user_id
        )
        return str(value) if value is not None else None

    async def set_password(self, user_id: int, password_hash: str) -> None:
        await self._db.pool.execute(
            "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
            user_id,
            password_hash,
        )

    async def set_role(self, user_id: int, role: Role) -> None:
        await self._db.pool.execute(
            "UPDATE users SET role = $2, updated_at = now() WHERE id = $1", user_id, role
        )


class PasswordResets:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, user_id: int, token_hash: bytes, ttl_s: int) -> None:
        await self._db.pool.execute(
            "INSERT INTO password_resets (user_id, token_hash, expires_at)"
            " VALUES ($1, $2, now() + make_interval(secs => $3))",
            user_id,
            token_hash,
            float(ttl_s),
        )

    async def pending_user(self, token_hash: bytes) -> User | None:
        """The user a usable (unused, unexpired) reset token belongs to."""
        row = await self._db.pool.fetchrow(
            f"SELECT {', '.join('u.' + c.strip() for c in _COLUMNS.split(','))}"
            " FROM password_resets r JOIN users u ON u.id = r.user_id"
            " WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now()",
            token_hash,
        )
        return _user(row) if row else None

    async def consume(self, token_hash: bytes, new_password_hash: str) -> int | None:
        """Use a reset token once: set the password and revoke every session, atomically.

        Returns the user id, or None when the token is unknown, used or expired.
        """
        async with self._db.transaction() as conn:
            user_id = await conn.fetchval(
                "UPDATE password_resets SET used_at = now()"
                " WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()"
                " RETURNING user_id",
                token_hash,
            )
            if user_id is None:
                return None
            await conn.execute(
                "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
                user_id,
                new_password_hash,
            )
            # Any other outstanding reset token for this user dies with this one.
            await conn.execute(
                "UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
                user_id,
            )
            await conn.execute(
                "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
                user_id,
            )
            return int(user_id)
