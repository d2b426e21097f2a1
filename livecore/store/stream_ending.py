"""Who may end a stream's broadcasts besides its owner and admins, and publishing blocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from livecore.store.db import Database


@dataclass(frozen=True, slots=True)
class PublishBlock:
    stream_id: int
    until: datetime
    reason: str
    actor_id: int | None


class StreamEnding:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def moderators_may_end(self, stream_id: int) -> bool:
        value = await self._db.pool.fetchval(
            "SELECT moderators_may_end FROM stream_end_settings WHERE stream_id = $1", stream_id
        )
        return bool(value)

    async def set_moderators_may_end(self, stream_id: int, allowed: bool) -> None:
        await self._db.pool.execute(
            "INSERT INTO stream_end_settings (stream_id, moderators_may_end) VALUES ($1, $2)"
            " ON CONFLICT (stream_id) DO UPDATE SET"
            " moderators_may_end = EXCLUDED.moderators_may_end, updated_at = now()",
            stream_id,
            allowed,
        )

    async def block(
        self, stream_id: int, for_s: int, reason: str, actor_id: int | None
    ) -> PublishBlock:
        """Refuse the stream's publishers for `for_s` seconds from now (replaces a block).

        The end is in whole seconds: people read it in the refusal."""
        row = await self._db.pool.fetchrow(
            "INSERT INTO publish_blocks (stream_id, until, reason, actor_id)"
            " VALUES ($1, date_trunc('second', now() + make_interval(secs => $2)), $3, $4)"
            " ON CONFLICT (stream_id) DO UPDATE SET until = EXCLUDED.until,"
            " reason = EXCLUDED.reason, actor_id = EXCLUDED.actor_id, created_at = now()"
            " RETURNING until",
            stream_id,
            float(for_s),
            reason,
            actor_id,
        )
        assert row is not None  # INSERT ... RETURNING always answers a row
        return PublishBlock(stream_id, row["until"], reason, actor_id)

    async def active_block(self, stream_id: int) -> PublishBlock | None:
        """The block in force now, if any (the database's clock decides, as for every node)."""
        row = await self._db.pool.fetchrow(
            "SELECT until, reason, actor_id FROM publish_blocks"
            " WHERE stream_id = $1 AND until > now()",
            stream_id,
        )
        if row is None:
            return None
        return PublishBlock(stream_id, row["until"], row["reason"], row["actor_id"])

    async def lift(self, stream_id: int) -> bool:
        """End the stream's block now; False when none was in force."""
        value = await self._db.pool.fetchval(
            "DELETE FROM publish_blocks WHERE stream_id = $1 RETURNING until > now()", stream_id
        )
        return bool(value)
