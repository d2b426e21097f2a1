"""What an account's data export reads, and the deletion of an account's personal data.

The export reads only rows of the account itself; what other people did (a tip received, a
subscriber) is listed without who they are. Every list is capped (EXPORT_LIST_MAX, newest
first), and a capped list is named in the export.

A deletion keeps the users row, since money records refer to it (tips, subscriptions,
payouts and ledger accounts are ON DELETE RESTRICT), and anonymises it: its e-mail and
display name become a tombstone, its password hash one that no password matches, its
sessions are revoked and its two-factor secrets, reset tokens, Stripe customer link and
moderator seats go. Its chat lines stay, shown with the tombstone name. Its streams stay
(tips and broadcasts refer to them) but are found no more (livecore.store.streams), so
nobody tips or subscribes to an account that can never be paid; their slugs stay taken, so
nobody else takes a deleted creator's address either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from livecore.store.admin_users import LastAdmin
from livecore.store.db import Connection, Database

EXPORT_LIST_MAX: Final = 10_000
DELETED_NAME: Final = "deleted user"
# Not an Argon2 hash: verification fails for every password (livecore.auth.passwords).
UNUSABLE_PASSWORD: Final = "!deleted"


def deleted_email(user_id: int) -> str:
    """The tombstone e-mail: unique, and in a reserved domain that delivers nothing."""
    return f"deleted-{user_id}@deleted.invalid"


def _deleted_name_key(user_id: int) -> str:
    # A real name's key never holds a zero-width space (livecore.text.name_key drops format
    # characters), so this never collides with one, and the start-up fill of missing keys
    # leaves the row alone.
    return f"deleted\u200b{user_id}"


@dataclass(frozen=True, slots=True)
class Section:
    rows: list[dict[str, Any]]
    truncated: bool


def _jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _rows(records: list[asyncpg.Record]) -> Section:
    rows = [{k: _jsonable(v) for k, v in r.items()} for r in records[:EXPORT_LIST_MAX]]
    for row in rows:
        if isinstance(row.get("details"), str):
            row["details"] = json.loads(row["details"])
    return Section(rows, len(records) > EXPORT_LIST_MAX)


# Each query takes the user id ($1) and the cap + 1 ($2): one row more says "truncated".
_EXPORT_QUERIES: Final = {
    "sessions": (
        "SELECT id, created_at, expires_at, last_seen_at, user_agent, revoked_at"
        " FROM sessions WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
    ),
    "streams": (
        "SELECT id, slug, title, visibility, state, created_at, started_at, ended_at"
        " FROM streams WHERE owner_id = $1 ORDER BY id DESC LIMIT $2"
    ),
    "chat_lines": (
        "SELECT s.slug AS stream, m.id, m.text, m.created_at, m.deleted_at"
        " FROM chat_messages m JOIN streams s ON s.id = m.stream_id WHERE m.user_id = $1"
        " ORDER BY m.created_at DESC, m.id DESC LIMIT $2"
    ),
    "chat_reports_filed": (
        "SELECT r.id, s.slug AS stream, r.message_id, r.reason, r.state, r.created_at"
        " FROM chat_reports r JOIN streams s ON s.id = r.stream_id WHERE r.reporter_id = $1"
        " ORDER BY r.id DESC LIMIT $2"
    ),
    "tips_given": (
        "SELECT t.id, s.slug AS stream, t.amount_minor, t.currency, t.message, t.status,"
        " t.refunded_minor, t.provider, t.created_at FROM tips t"
        " JOIN streams s ON s.id = t.stream_id WHERE t.viewer_id = $1"
        " ORDER BY t.id DESC LIMIT $2"
    ),
    # Received: the amounts and the platform's share, not who gave them nor what they wrote.
    "tips_received": (
        "SELECT t.id, s.slug AS stream, t.amount_minor, t.platform_fee_minor, t.currency,"
        " t.status, t.refunded_minor, t.created_at FROM tips t"
        " JOIN streams s ON s.id = t.stream_id WHERE t.creator_id = $1"
        " ORDER BY t.id DESC LIMIT $2"
    ),
    "subscriptions": (
        "SELECT x.id, st.name AS tier, st.price_minor, st.currency, x.provider, x.status,"
        " x.current_period_end, x.cancel_at_period_end, x.created_at FROM subscriptions x"
        " JOIN subscription_tiers st ON st.id = x.tier_id WHERE x.viewer_id = $1"
        " ORDER BY x.id DESC LIMIT $2"
    ),
    "tiers": (
        "SELECT id, name, price_minor, currency, active, created_at FROM subscription_tiers"
        " WHERE creator_id = $1 ORDER BY id DESC LIMIT $2"
    ),
    "payouts": (
        "SELECT id, amount_minor, currency, rail, status, failure, created_at, updated_at"
        " FROM payouts WHERE creator_id = $1 ORDER BY id DESC LIMIT $2"
    ),
    # About the account: what it did to itself and what others did to it, without who.
    "audit": (
        "SELECT id, at, action, target_type, target_id, details, client_ip FROM audit_log"
        " WHERE target_type = 'user' AND target_id = $1::bigint::text"
        " ORDER BY id DESC LIMIT $2"
    ),
}


class DataRights:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def export(self, user_id: int) -> dict[str, Section]:
        """Every list of the export, read in one repeatable-read transaction (a snapshot)."""
        async with (
            self._db.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            found = {}
            for name, query in _EXPORT_QUERIES.items():
                found[name] = _rows(await conn.fetch(query, user_id, EXPORT_LIST_MAX + 1))
            balances = await conn.fetch(
                # What is owed to them: the platform's liability, below zero in the ledger.
                "SELECT currency, -balance_minor AS owed_minor FROM ledger_accounts"
                " WHERE kind = 'creator' AND owner_id = $1 ORDER BY currency",
                user_id,
            )
            two_factor = await conn.fetchrow(
                "SELECT enabled_at, (SELECT count(*) FROM two_factor_recovery r"
                " WHERE r.user_id = f.user_id AND r.used_at IS NULL) AS recovery_left"
                " FROM two_factor f WHERE f.user_id = $1 AND f.enabled_at IS NOT NULL",
                user_id,
            )
        found["balances"] = _rows(balances)
        state = {"enabled": False, "enabled_at": None, "recovery_codes_left": 0}
        if two_factor is not None:  # on (an enrolment waiting for its first code is not)
            state = {"enabled": True, "enabled_at": _jsonable(two_factor["enabled_at"]),
                     "recovery_codes_left": int(two_factor["recovery_left"])}  # fmt: skip
        found["two_factor"] = Section([state], False)
        return found

    async def money_owed(self, user_id: int) -> dict[str, int]:
        """What the ledger owes the account as a creator, by currency (a creator's account is
        a liability: owed while its balance is below zero), with what is on its way to them
        (payouts in transit) and their share of tips still being paid counted as owed too."""
        rows = await self._db.pool.fetch(
            "SELECT currency, sum(amount) AS owed FROM ("
            " SELECT currency, -balance_minor AS amount FROM ledger_accounts"
            "  WHERE kind = 'creator' AND owner_id = $1 AND balance_minor < 0"
            " UNION ALL SELECT currency, amount_minor FROM payouts"
            "  WHERE creator_id = $1 AND status = 'in_transit'"
            # A tip still being paid would be owed once it settles.
            " UNION ALL SELECT currency, amount_minor - platform_fee_minor FROM tips"
            "  WHERE creator_id = $1 AND status = 'pending') o"
            " GROUP BY currency ORDER BY currency",
            user_id,
        )
        return {r["currency"]: int(r["owed"]) for r in rows}

    async def open_subscriptions(self, user_id: int) -> list[tuple[int, int]]:
        """(subscription id, viewer id) of subscriptions still renewing that the account
        pays (as viewer) or is paid (as creator)."""
        rows = await self._db.pool.fetch(
            "SELECT id, viewer_id FROM subscriptions WHERE (viewer_id = $1 OR creator_id = $1)"
            " AND status <> 'canceled' AND NOT cancel_at_period_end ORDER BY id",
            user_id,
        )
        return [(r["id"], r["viewer_id"]) for r in rows]

    async def is_last_admin(self, user_id: int) -> bool:
        """Whether the account is the only admin (checked again, under lock, by anonymise)."""
        admins = await self._db.pool.fetch("SELECT id FROM users WHERE role = 'admin' LIMIT 2")
        return [r["id"] for r in admins] == [user_id]

    async def rooms_of(self, user_id: int, limit: int = 1000) -> list[int]:
        """The streams whose chat rooms may remember the account's name (its chat lines and
        tips), most recently used first."""
        rows = await self._db.pool.fetch(
            "SELECT stream_id FROM (SELECT stream_id, max(created_at) AS last"
            " FROM chat_messages WHERE user_id = $1 GROUP BY stream_id"
            " UNION ALL SELECT stream_id, max(created_at) FROM tips WHERE viewer_id = $1"
            " GROUP BY stream_id) r GROUP BY stream_id ORDER BY max(last) DESC LIMIT $2",
            user_id,
            limit,
        )
        return [r["stream_id"] for r in rows]

    async def anonymise(self, user_id: int, block_s: int, reason: str) -> list[bytes] | None:
        """Remove the account's personal data in one transaction (see the module's text);
        its streams' keys are revoked, their titles cleared, their
        recordings taken down and their publishing blocked for `block_s`; its tiers retired.
        Returns the revoked sessions' token hashes; None when the account is deleted already
        or does not exist. Raises LastAdmin for the only admin: someone must be left to run
        the platform."""
        async with self._db.transaction() as conn:
            # Every admin's row locked, as for role changes (livecore.store.admin_users), so
            # that the last two admins deleting themselves at once cannot both succeed.
            admins = await conn.fetch(
                "SELECT id FROM users WHERE role = 'admin' ORDER BY id FOR UPDATE"
            )
            if [r["id"] for r in admins] == [user_id]:
                raise LastAdmin()
            done = await conn.fetchval(
                "UPDATE users SET email = $2, display_name = $3, name_key = $4,"
                " password_hash = $5, role = 'viewer', deleted_at = now(), updated_at = now()"
                " WHERE id = $1 AND deleted_at IS NULL RETURNING id",
                user_id, deleted_email(user_id), DELETED_NAME, _deleted_name_key(user_id),
                UNUSABLE_PASSWORD,
            )  # fmt: skip
            if done is None:
                return None
            revoked = await conn.fetch(
                "UPDATE sessions SET revoked_at = now()"
                " WHERE user_id = $1 AND revoked_at IS NULL RETURNING token_hash",
                user_id,
            )
            for table in ("two_factor_recovery", "two_factor", "password_resets",
                          "stripe_customers", "creator_requests", "stream_moderators"):  # fmt: skip
                await conn.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
            await _rename_lines(conn, user_id)
            await conn.execute(
                "UPDATE stream_keys SET revoked_at = now() WHERE revoked_at IS NULL"
                " AND stream_id IN (SELECT id FROM streams WHERE owner_id = $1)",
                user_id,
            )
            # Its streams drop out of every lookup by slug (livecore.store.streams joins
            # only accounts not deleted), and its tiers take no new subscribers: nobody tips
            # or subscribes to an account that can never be paid.
            await conn.execute(
                "UPDATE streams SET title = '', updated_at = now() WHERE owner_id = $1", user_id
            )
            await conn.execute(
                "UPDATE subscription_tiers SET active = false WHERE creator_id = $1", user_id
            )
            await conn.execute(
                "UPDATE broadcasts SET recording_deleted_at = now()"
                " WHERE recording_deleted_at IS NULL"
                " AND stream_id IN (SELECT id FROM streams WHERE owner_id = $1)",
                user_id,
            )
            await conn.execute(
                "INSERT INTO publish_blocks (stream_id, until, reason, actor_id)"
                " SELECT id, now() + make_interval(secs => $2), $3, NULL FROM streams"
                " WHERE owner_id = $1 ON CONFLICT (stream_id) DO UPDATE"
                " SET until = EXCLUDED.until, reason = EXCLUDED.reason, actor_id = NULL,"
                " created_at = now()",
                user_id, block_s, reason,
            )  # fmt: skip
        return [r["token_hash"] for r in revoked]


async def _rename_lines(conn: Connection, user_id: int) -> None:
    """The account's chat lines stay in their rooms' history, under the tombstone name.

    Rewritten here rather than with jsonb: a body keeps the envelope's key order and
    spacing (livecore.events.types.encode), which readers of the history rely on (the id
    is found right after the type).
    """
    rows = await conn.fetch(
        "SELECT stream_id, id, body FROM chat_messages WHERE user_id = $1 AND body IS NOT NULL"
        " FOR UPDATE",
        user_id,
    )
    changed = []
    for row in rows:
        event = json.loads(row["body"])
        if isinstance(event.get("user"), dict):
            event["user"]["name"] = DELETED_NAME
            body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
            changed.append((row["stream_id"], row["id"], body))
    if changed:
        await conn.execute(
            "UPDATE chat_messages m SET body = r.body"
            " FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS r (stream_id, id, body)"
            " WHERE m.stream_id = r.stream_id AND m.id = r.id",
            [c[0] for c in changed], [c[1] for c in changed], [c[2] for c in changed],
        )  # fmt: skip
