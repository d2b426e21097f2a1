"""Broadcasts: each go-live of a stream, its media description and its recording."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from livecore.store.db import Database


@dataclass(frozen=True, slots=True)
class Broadcast:
    id: int
    stream_id: int
    started_at: datetime
    ended_at: datetime | None
    video_codec: str
    audio_codec: str
    width: int | None
    height: int | None
    recording_path: str


@dataclass(frozen=True, slots=True)
class PastBroadcast:
    """A finished broadcast and its audience (chat sockets: peak at once, unique people)."""

    id: int
    started_at: datetime
    ended_at: datetime
    peak_viewers: int
    unique_viewers: int
    recording: bool  # kept and playable as VOD


@dataclass(frozen=True, slots=True)
class MediaInfo:
    video_codec: str = ""
    audio_codec: str = ""
    width: int | None = None
    height: int | None = None
    bitrate_bps: int | None = None


@dataclass(frozen=True, slots=True)
class KeptRecording:
    id: int
    path: str
    size_bytes: int
    ended_at: datetime


# A recording complete on disk. Nodes older than migration 0008 do not set recording_ready
# (a rolling upgrade): they write a recording's size only once it is complete.
_LISTED = "(recording_ready OR recording_bytes > 0)"


def _broadcast(row: asyncpg.Record) -> Broadcast:
    return Broadcast(
        row["id"], row["stream_id"], row["started_at"], row["ended_at"], row["video_codec"],
        row["audio_codec"], row["width"], row["height"], row["recording_path"],
    )  # fmt: skip


_COLUMNS = (
    "id, stream_id, started_at, ended_at, video_codec, audio_codec, width, height, recording_path"
)


class Broadcasts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self, stream_id: int, recording_path: str = "", node_id: str = "") -> Broadcast:
        """Open a broadcast carried by `node_id`, recording into `recording_path` (relative to
        the data directory), and mark the stream live, closing one left open by a crash."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE broadcasts SET ended_at = now() WHERE stream_id = $1 AND ended_at IS NULL",
                stream_id,
            )
            row = await conn.fetchrow(
                f"INSERT INTO broadcasts (stream_id, recording_path, node_id) VALUES ($1, $2, $3)"
                f" RETURNING {_COLUMNS}",
                stream_id,
                recording_path,
                node_id,
            )
            assert row is not None
            if recording_path:  # its first leg (store.recording_legs)
                await conn.execute(
                    "INSERT INTO recording_legs (broadcast_id, leg, node_id) VALUES ($1, 0, $2)",
                    row["id"], node_id,
                )  # fmt: skip
            await conn.execute(
                "UPDATE streams SET state = 'live', started_at = now(), ended_at = NULL,"
                " updated_at = now() WHERE id = $1",
                stream_id,
            )
        return _broadcast(row)

    async def describe(self, broadcast_id: int, media: MediaInfo) -> None:
        await self._db.pool.execute(
            "UPDATE broadcasts SET video_codec = $2, audio_codec = $3, width = $4, height = $5,"
            " bitrate_bps = $6 WHERE id = $1",
            broadcast_id, media.video_codec, media.audio_codec, media.width, media.height,
            media.bitrate_bps,
        )  # fmt: skip

    async def unfinished_recordings(
        self, but_open_of: str | None = None
    ) -> list[tuple[int, str, bool]]:
        """(id, recording path, still open) of every recording not complete yet, on any node
        (but those of broadcasts still open that node `but_open_of` carries)."""
        rows = await self._db.pool.fetch(
            "SELECT id, recording_path, ended_at IS NULL AS open FROM broadcasts"
            " WHERE recording_path <> '' AND NOT recording_ready"
            " AND recording_deleted_at IS NULL"
            " AND NOT (ended_at IS NULL AND node_id = coalesce($1, '') AND $1 IS NOT NULL)"
            " ORDER BY id",
            but_open_of,
        )
        return [(r["id"], r["recording_path"], r["open"]) for r in rows]

    async def end(self, broadcast_id: int, node_id: str | None = None) -> bool:
        """End the broadcast (with `node_id`: only while that node carries it; another may
        have continued it) and mark its stream offline unless another broadcast of it is
        open. Returns whether this call ended it."""
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE broadcasts SET ended_at = coalesce(ended_at, now()) WHERE id = $1"
                " AND ($2::text IS NULL OR node_id IN ($2, '') OR ended_at IS NOT NULL)"
                " RETURNING stream_id, ended_at = now() AS ended_now",
                broadcast_id, node_id,
            )  # fmt: skip
            if row is None:
                return False
            await conn.execute(
                "UPDATE streams SET state = 'offline', ended_at = now(), updated_at = now()"
                " WHERE id = $1 AND NOT EXISTS"
                " (SELECT 1 FROM broadcasts WHERE stream_id = $1 AND ended_at IS NULL)",
                row["stream_id"],
            )
            return bool(row["ended_now"])

    async def recordings(self, stream_id: int, limit: int = 50) -> list[Broadcast]:
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM broadcasts WHERE stream_id = $1 AND ended_at IS NOT NULL"
            f" AND {_LISTED} AND recording_deleted_at IS NULL"
            " ORDER BY started_at DESC LIMIT $2",
            stream_id,
            limit,
        )
        return [_broadcast(r) for r in rows]

    async def recent_recordings(
        self, stream_ids: list[int], per_stream: int
    ) -> dict[int, list[Broadcast]]:
        """Each stream's newest listed recordings (at most `per_stream`), in one query."""
        rows = await self._db.pool.fetch(
            f"SELECT b.* FROM unnest($1::bigint[]) AS wanted (id) CROSS JOIN LATERAL"
            f" (SELECT {_COLUMNS} FROM broadcasts WHERE stream_id = wanted.id"
            f" AND ended_at IS NOT NULL AND {_LISTED} AND recording_deleted_at IS NULL"
            " ORDER BY started_at DESC LIMIT $2) b ORDER BY b.stream_id, b.started_at DESC",
            stream_ids,
            per_stream,
        )
        found: dict[int, list[Broadcast]] = {}
        for row in rows:
            found.setdefault(row["stream_id"], []).append(_broadcast(row))
        return found

    async def audience(self, stream_id: int, limit: int = 50) -> list[PastBroadcast]:
        """The stream's finished broadcasts, newest first, with their viewer figures."""
        rows = await self._db.pool.fetch(
            "SELECT id, started_at, ended_at, peak_viewers, unique_viewers,"
            f" {_LISTED} AND recording_deleted_at IS NULL AS recording FROM broadcasts"
            " WHERE stream_id = $1 AND ended_at IS NOT NULL ORDER BY started_at DESC LIMIT $2",
            stream_id, limit,
        )  # fmt: skip
        return [
            PastBroadcast(
                r["id"],
                r["started_at"],
                r["ended_at"],
                r["peak_viewers"],
                r["unique_viewers"],
                r["recording"],
            )
            for r in rows
        ]

    async def get(self, broadcast_id: int) -> Broadcast | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM broadcasts WHERE id = $1 AND recording_deleted_at IS NULL",
            broadcast_id,
        )
        return _broadcast(row) if row else None

    async def recording_location(self, broadcast_id: int) -> tuple[str, str, list[int]] | None:
        """(stream slug, recording path, its legs with media in order: store.recording_legs)
        of a kept recording, for serving it as VOD. No legs recorded (a broadcast older than
        legs): its leg 0 is the whole recording."""
        row = await self._db.pool.fetchrow(
            "SELECT s.slug, b.recording_path, ARRAY(SELECT l.leg FROM recording_legs l"
            " WHERE l.broadcast_id = b.id AND l.bytes > 0 ORDER BY l.leg) AS legs"
            " FROM broadcasts b JOIN streams s ON s.id = b.stream_id"
            f" WHERE b.id = $1 AND b.ended_at IS NOT NULL AND {_LISTED}"
            " AND b.recording_deleted_at IS NULL",
            broadcast_id,
        )
        return (row["slug"], row["recording_path"], list(row["legs"]) or [0]) if row else None

    async def kept_recordings(self) -> list[KeptRecording]:
        """Every finished, not yet deleted recording, oldest first."""
        rows = await self._db.pool.fetch(
            "SELECT id, recording_path, recording_bytes, ended_at FROM broadcasts"
            " WHERE ended_at IS NOT NULL AND recording_path <> ''"
            " AND recording_deleted_at IS NULL ORDER BY ended_at, id"
        )
        return [
            KeptRecording(r["id"], r["recording_path"], r["recording_bytes"], r["ended_at"])
            for r in rows
        ]

    async def delete_recording(self, stream_id: int, broadcast_id: int) -> str | None:
        """Stop listing and serving one of a stream's recordings; returns where its files are
        (None: the stream has no such recording)."""
        path: str | None = await self._db.pool.fetchval(
            "UPDATE broadcasts SET recording_deleted_at = now() WHERE id = $1 AND stream_id = $2"
            f" AND ended_at IS NOT NULL AND {_LISTED} AND recording_deleted_at IS NULL"
            " RETURNING recording_path",
            broadcast_id, stream_id,
        )  # fmt: skip
        return path

    async def recently_deleted(self, within_days: int) -> list[str]:
        """Paths of recordings deleted in the last `within_days` (their files may still be on
        the disk of the node that recorded them). Only finished ones: a live stream taken down
        is still being written, and its writer would only put the files back."""
        rows = await self._db.pool.fetch(
            "SELECT recording_path FROM broadcasts WHERE recording_path <> ''"
            f" AND recording_deleted_at > now() - make_interval(days => $1) AND {_LISTED}",
            within_days,
        )
        return [r["recording_path"] for r in rows]

    async def mark_deleted(self, broadcast_id: int, *, files_removed: bool = False) -> None:
        """`files_removed`: its files are gone from the shared bucket too."""
        await self._db.pool.execute(
            "UPDATE broadcasts SET recording_deleted_at = now(),"
            " recording_files_removed_at = CASE WHEN $2 THEN now() END WHERE id = $1",
            broadcast_id, files_removed,
        )  # fmt: skip

    async def files_to_remove(self) -> list[tuple[int, str]]:
        """(id, path) of deleted, finished recordings whose files may still be in the shared
        bucket (finished only, as `recently_deleted`)."""
        rows = await self._db.pool.fetch(
            "SELECT id, recording_path FROM broadcasts WHERE recording_deleted_at IS NOT NULL"
            f" AND recording_files_removed_at IS NULL AND recording_path <> '' AND {_LISTED}"
            " ORDER BY id"
        )
        return [(r["id"], r["recording_path"]) for r in rows]

    async def mark_files_removed(self, broadcast_id: int) -> None:
        await self._db.pool.execute(
            "UPDATE broadcasts SET recording_files_removed_at = now() WHERE id = $1",
            broadcast_id,
        )

    async def open_broadcast(self, stream_id: int) -> int | None:
        value = await self._db.pool.fetchval(
            "SELECT id FROM broadcasts WHERE stream_id = $1 AND ended_at IS NULL", stream_id
        )
        return int(value) if value is not None else None

    async def record_audience(self, broadcast_id: int, viewers: int, unique: int) -> None:
        """Raise the broadcast's peak and unique viewer counts (never lowers them)."""
        await self._db.pool.execute(
            "UPDATE broadcasts SET peak_viewers = GREATEST(peak_viewers, $2),"
            " unique_viewers = GREATEST(unique_viewers, $3) WHERE id = $1",
            broadcast_id,
            viewers,
            unique,
        )
