"""`livecore stream rotate-key SLUG`: replace a stream's key and end the live session the
old key opened, wherever it is ingested.

This command is not a node, so it reaches them the way an end asked on one node reaches the
node holding the publisher: an offline stream state on the event bus (Redis), which the
ingesting node answers by closing the session (livecore.streams.ending). The Redis is the
configured `redis_url`, or the private one of `livecore serve --processes` in the data dir.
A single node without Redis keeps its bus in its own process: no command can reach it, and
the output says so (the old key is refused all the same).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from livecore.config import Config
from livecore.events.bus import BusUnavailable
from livecore.processes.redis_server import PrivateRedis
from livecore.store import Database
from livecore.store.audit import AuditLog
from livecore.store.streams import Streams
from livecore.streams.ending import KEY_ROTATION_REASON, announce_end
from livecore.streams.service import StreamService
from livecore.wiring.foundation import open_event_bus


class UnknownStream(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Rotated:
    slug: str
    key: str
    was_live: bool
    ended: bool  # the live session was ended on the node holding it
    why_not: str  # when it was live and not ended: why

    def text(self) -> str:
        first = (
            f"new stream key for {self.slug} (shown once; the old one no longer works): {self.key}"
        )
        if not self.was_live:
            return first + "\nthe stream was not live: no session to end"
        if self.ended:
            return first + "\nthe live session published with the old key was ended"
        return (
            f"{first}\nthe live session published with the old key was NOT ended: {self.why_not};"
            f" end it with POST /api/v1/streams/{self.slug}/end"
        )

    def json(self) -> str:
        return json.dumps(
            {
                "slug": self.slug,
                "stream_key": self.key,
                "was_live": self.was_live,
                "live_session_ended": self.ended,
                "not_ended_because": self.why_not or None,
            }
        )


def _redis_url(config: Config) -> str:
    if config.redis_url:
        return config.redis_url
    private = PrivateRedis(config.data_path / "run")
    return private.url if private.socket_path.exists() else ""


async def rotate_key(config: Config, db: Database, slug: str) -> Rotated:
    """Raises UnknownStream."""
    service = StreamService(Streams(db), AuditLog(db))
    stream = await service.get(slug)
    if stream is None:
        raise UnknownStream(slug)
    key = await service.rotate_key(None, stream)
    if stream.state != "live":
        return Rotated(slug, key, False, False, "")
    url = _redis_url(config)
    if not url:
        why = "no redis_url is set, so the node's bus is inside its own process"
        return Rotated(slug, key, True, False, why)
    bus = await open_event_bus(config, db, redis_url=url)
    try:
        await announce_end(bus, stream.id, "key_rotation", KEY_ROTATION_REASON)
    except BusUnavailable as exc:
        return Rotated(slug, key, True, False, f"Redis cannot be reached ({exc})")
    finally:
        await bus.close()
    return Rotated(slug, key, True, True, "")
