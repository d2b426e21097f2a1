"""A recording's legs: what each node that carried its broadcast recorded (migration 0020).

A broadcast that never moved has one leg, 0. A publisher that reconnects to another node
while its node drains or after it died continues the broadcast there, and that node records
the next leg. Each leg is finished once (by its node, or from storage by a survivor of it);
the recording is complete, listed and served as VOD, once every leg is, its size the sum of
theirs. A broadcast opened by a node older than migration 0020 has no rows: finishing its
leg 0 creates it.
"""

from __future__ import annotations

from dataclasses import dataclass

from livecore.store.db import Database


@dataclass(frozen=True, slots=True)
class UnfinishedLeg:
    broadcast_id: int
    leg: int
    recording_path: str  # the broadcast's (leg 0's); leg k is stored under it


class RecordingLegs:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def unfinished(
        self, broadcast_id: int, node_id: str | None = None, *, of_node: str | None = None
    ) -> list[int] | None:
        """The broadcast's legs not finished yet (with `of_node`: those that node recorded),
        but for the one a node other than `node_id` records now, having continued the
        broadcast (it is open there). None: no legs are recorded at all (a broadcast older
        than legs): its leg 0 is the whole recording."""
        rows = await self._db.pool.fetch(
            "SELECT l.leg, l.finished, l.node_id, coalesce(l.leg > 0 AND b.ended_at IS NULL"
            " AND l.node_id = b.node_id AND b.node_id NOT IN ('', $2), false) AS elsewhere"
            " FROM recording_legs l"
            " JOIN broadcasts b ON b.id = l.broadcast_id WHERE l.broadcast_id = $1"
            " ORDER BY l.leg",
            broadcast_id, node_id,
        )  # fmt: skip
        if not rows:
            return None
        return [
            r["leg"]
            for r in rows
            if not r["finished"] and not r["elsewhere"] and of_node in (None, r["node_id"])
        ]

    async def of_node(self, node_id: str) -> list[UnfinishedLeg]:
        """Legs `node_id` was recording and never finished (it died meanwhile)."""
        rows = await self._db.pool.fetch(
            "SELECT l.broadcast_id, l.leg, b.recording_path FROM recording_legs l"
            " JOIN broadcasts b ON b.id = l.broadcast_id"
            " WHERE l.node_id = $1 AND NOT l.finished ORDER BY l.broadcast_id, l.leg",
            node_id,
        )
        return [UnfinishedLeg(r["broadcast_id"], r["leg"], r["recording_path"]) for r in rows]

    async def finish(self, broadcast_id: int, leg: int, size_bytes: int) -> bool:
        """Leg `leg` is finished with `size_bytes` of media; when it was the last one
        unfinished, the recording is complete: listed (once its broadcast has ended) if any
        leg has media. False: the leg was finished already (by a survivor of its node)."""
        async with self._db.transaction() as conn:
            # One leg finishing at a time per broadcast: the last one sees every other's.
            await conn.execute("SELECT 1 FROM broadcasts WHERE id = $1 FOR UPDATE", broadcast_id)
            done = await conn.fetchval(
                "INSERT INTO recording_legs (broadcast_id, leg, node_id, finished, bytes)"
                " SELECT $1, $2, node_id, true, $3 FROM broadcasts WHERE id = $1"
                " ON CONFLICT (broadcast_id, leg) DO UPDATE SET finished = true, bytes = $3"
                " WHERE NOT recording_legs.finished RETURNING true",
                broadcast_id, leg, size_bytes,
            )  # fmt: skip
            if not done:
                return False
            await conn.execute(
                "UPDATE broadcasts b SET recording_bytes = l.total,"
                " recording_ready = b.recording_path <> '' AND l.total > 0"
                " FROM (SELECT coalesce(sum(bytes), 0) AS total, bool_and(finished) AS all_done"
                " FROM recording_legs WHERE broadcast_id = $1) l"
                " WHERE b.id = $1 AND l.all_done",
                broadcast_id,
            )
        return True
