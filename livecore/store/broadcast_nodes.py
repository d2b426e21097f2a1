"""Which node carries each open broadcast: a broadcast moving to another node (its publisher
reconnected there while its node drained or after it died), and a dead node's broadcasts
ended by exactly one of the nodes that survive it (the row lock decides)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from livecore.store.db import Database


@dataclass(frozen=True, slots=True)
class OpenBroadcast:
    id: int
    node_id: str  # '' : opened by a node older than migration 0019
    continuations: int
    recording_path: str  # '': not recorded


@dataclass(frozen=True, slots=True)
class Orphan:
    """A broadcast ended because its node was gone."""

    id: int
    stream_id: int
    recording_path: str


class BroadcastNodes:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def open_broadcast(self, stream_id: int) -> OpenBroadcast | None:
        row = await self._db.pool.fetchrow(
            "SELECT id, node_id, continuations, recording_path FROM broadcasts"
            " WHERE stream_id = $1 AND ended_at IS NULL",
            stream_id,
        )
        if row is None:
            return None
        return OpenBroadcast(row["id"], row["node_id"], row["continuations"], row["recording_path"])

    async def take_over(self, broadcast_id: int, node_id: str, leg: int = 0) -> bool:
        """`node_id` carries the open broadcast from now on, recording its leg `leg` (0: none,
        store.recording_legs); False: it has ended meanwhile."""
        async with self._db.transaction() as conn:
            path = await conn.fetchval(
                "UPDATE broadcasts SET node_id = $2, continuations = continuations + 1"
                " WHERE id = $1 AND ended_at IS NULL RETURNING recording_path",
                broadcast_id, node_id,
            )  # fmt: skip
            if path is None:
                return False
            if path and leg > 0:
                await conn.execute(
                    "INSERT INTO recording_legs (broadcast_id, leg, node_id) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING",
                    broadcast_id, leg, node_id,
                )  # fmt: skip
                # The legs before may all be finished (its node drained fast): the recording
                # is not complete again until this one is (store.recording_legs).
                await conn.execute(
                    "UPDATE broadcasts SET recording_ready = false, recording_bytes = 0"
                    " WHERE id = $1",
                    broadcast_id,
                )
        return True

    async def nodes_with_open_broadcasts(self) -> set[str]:
        """Nodes carrying open broadcasts, or recording legs not finished yet (a recording's
        leg of a node that died after its publisher moved on: store.recording_legs)."""
        rows = await self._db.pool.fetch(
            "SELECT node_id FROM broadcasts WHERE ended_at IS NULL AND node_id <> ''"
            " UNION SELECT node_id FROM recording_legs WHERE NOT finished AND node_id <> ''"
        )
        return {r["node_id"] for r in rows}

    async def open_of(self, node_id: str) -> list[int]:
        """The open broadcasts `node_id` carries."""
        rows = await self._db.pool.fetch(
            "SELECT id FROM broadcasts WHERE node_id = $1 AND ended_at IS NULL ORDER BY id",
            node_id,
        )
        return [r["id"] for r in rows]

    async def end_orphans(
        self, node_id: str, *, only: Collection[int] | None = None, but: Collection[int] = ()
    ) -> list[Orphan]:
        """End every broadcast `node_id` still carries (of `only` when given, but those of
        `but`) and mark their streams offline. Nodes racing to do it each get a disjoint
        share (usually one gets all): an UPDATE waits for a row another holds, then finds it
        ended and skips it."""
        async with self._db.transaction() as conn:
            rows = await conn.fetch(
                "UPDATE broadcasts SET ended_at = now() WHERE node_id = $1 AND ended_at IS NULL"
                " AND ($2::bigint[] IS NULL OR id = ANY($2)) AND NOT id = ANY($3::bigint[])"
                " RETURNING id, stream_id, recording_path",
                node_id, None if only is None else list(only), list(but),
            )  # fmt: skip
            stream_ids = [r["stream_id"] for r in rows]
            if stream_ids:
                await conn.execute(
                    "UPDATE streams SET state = 'offline', ended_at = now(), updated_at = now()"
                    " WHERE id = ANY($1::bigint[]) AND NOT EXISTS (SELECT 1 FROM broadcasts b"
                    " WHERE b.stream_id = streams.id AND b.ended_at IS NULL)",
                    stream_ids,
                )
        return [Orphan(r["id"], r["stream_id"], r["recording_path"]) for r in rows]

    async def unfinished_recordings(
        self, node_id: str, only: Collection[int] | None = None
    ) -> list[tuple[int, str]]:
        """(id, recording path) of the ended broadcasts `node_id` carried last (of `only`
        when given) whose recordings were never finished (its process died before it could)."""
        rows = await self._db.pool.fetch(
            "SELECT id, recording_path FROM broadcasts WHERE node_id = $1"
            " AND ended_at IS NOT NULL AND recording_path <> '' AND NOT recording_ready"
            " AND recording_deleted_at IS NULL AND ($2::bigint[] IS NULL OR id = ANY($2))"
            " ORDER BY id",
            node_id, None if only is None else list(only),
        )  # fmt: skip
        return [(r["id"], r["recording_path"]) for r in rows]
