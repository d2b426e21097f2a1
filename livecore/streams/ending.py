"""Ending live broadcasts on request: who may, how the ingesting node hears it, and blocks.

An end is one `stream_state` event in the stream's room on the event bus, carrying
`ended_by` and `reason`. Every node's chat sockets of that room pass it to viewers (the
watch page shows why the broadcast ended), and the node that ingests the stream, which
listens to the room while the broadcast lasts (`LiveEnder`), closes the publisher's peer
connection and ends the broadcast the way a publisher hanging up does: the playlists get
their ENDLIST and the recording is finished. So an end works from any node.

Admins may also block publishing for a while: the stream's WHIP POSTs are refused with the
reason until then (livecore.signaling reads the block from the store).

Imports events and store; never sfu or hls: wiring/media.py hands `LiveEnder` this node's
publishers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from livecore.events.bus import BusUnavailable, EventBus
from livecore.events.types import Event, StreamState
from livecore.store.audit import AuditLog
from livecore.store.broadcasts import Broadcasts
from livecore.store.stream_ending import PublishBlock, StreamEnding
from livecore.store.streams import Stream, Streams
from livecore.store.users import User
from livecore.text import has_control, has_visible

logger = logging.getLogger(__name__)

# Who ended a broadcast, as viewers are told (a role, never a person's name).
EndedBy = Literal["owner", "moderator", "admin", "key_rotation", "platform"]
REASON_MAX_LEN = 500
BLOCK_MAX_S = 366 * 86_400
# A taken-down stream stays blocked this long unless the admin says otherwise.
TAKEDOWN_BLOCK_S = 7 * 86_400
KEY_ROTATION_REASON = "the stream key was changed"


class NotLive(Exception):
    """The stream has no broadcast to end."""


class EndRefused(Exception):
    """The actor may not do this; the message says why."""


def check_reason(reason: str) -> str | None:
    if len(reason) > REASON_MAX_LEN:
        return f"must be at most {REASON_MAX_LEN} characters"
    # Shown to viewers on the watch page: the chat's rules for text on a line of its own.
    if has_control(reason, newlines=False):
        return "must not contain control characters"
    if not has_visible(reason):
        return "must contain a visible character"
    return None


def ender_role(
    user: User, stream: Stream, *, is_moderator: bool, moderators_may_end: bool
) -> EndedBy:
    """How `user` may end the stream's broadcast; raises EndRefused when they may not."""
    if stream.owner_id == user.id:
        return "owner"
    if user.role == "admin":
        return "admin"
    if is_moderator and moderators_may_end:
        return "moderator"
    if is_moderator:
        raise EndRefused("the stream's owner does not let moderators end its broadcasts")
    raise EndRefused(
        "only the stream's owner, its moderators when the owner allows it, and admins may"
        " end its broadcast"
    )


async def announce_end(
    bus: EventBus, stream_id: int, ended_by: EndedBy, reason: str, *, everywhere: bool = True
) -> None:
    """Tell every node (and so the ingesting one and every viewer) that the broadcast ends.

    With `everywhere`, raises BusUnavailable when other nodes cannot be reached: the
    publisher may be on one of them, so an end heard by this node alone is no end.
    """
    ended = StreamState("offline", ended_by=ended_by, reason=reason)
    await bus.publish(stream_id, ended, local_fallback=not everywhere)


async def end_all(
    bus: EventBus,
    audit: AuditLog,
    broadcasts: Broadcasts,
    live: list[tuple[int, str]],
    ended_by: EndedBy,
    reason: str,
    actor_id: int,
) -> tuple[list[str], list[str]]:
    """End each live broadcast of `live` (stream id, slug) for an act on its owner's account
    (a suspension, a deletion), auditing each in its stream's log as every other end is.

    Each broadcast is recorded as ended here, at once, as an end on request is (a
    broadcast between nodes has no ingesting node to do it: `end_open_broadcast`).

    Returns the slugs ended everywhere and those only this node heard about: with the other
    nodes unreachable, the account's publishing block refuses the publisher's reconnects.
    """
    ended: list[str] = []
    unreached: list[str] = []
    for stream_id, slug in live:
        try:
            await announce_end(bus, stream_id, ended_by, reason)
            ended.append(slug)
        except BusUnavailable:
            await announce_end(bus, stream_id, ended_by, reason, everywhere=False)
            unreached.append(slug)
        await end_open_broadcast(broadcasts, stream_id)
        await audit.record(
            "stream.end", "stream", stream_id, actor_id=actor_id,
            details={
                "stream_id": stream_id, "slug": slug, "reason": reason,
                "ended_by": ended_by, "was_live": True, "blocked_until": None,
                "all_nodes": slug not in unreached,
            },
        )  # fmt: skip
    return ended, unreached


async def end_open_broadcast(broadcasts: Broadcasts, stream_id: int) -> None:
    """Record the end here, at once, not only on the node ingesting the stream (which ends
    it too as it closes the publisher): a broadcast between nodes (its publisher left a
    draining node, which keeps it open a while for the publisher to continue elsewhere)
    has no such node, and a publisher that reconnects must not continue it."""
    broadcast_id = await broadcasts.open_broadcast(stream_id)
    if broadcast_id is not None and await broadcasts.end(broadcast_id):
        logger.info("stream %d: broadcast %d ended on request", stream_id, broadcast_id)


@dataclass(frozen=True, slots=True)
class Ended:
    ended_by: EndedBy
    block: PublishBlock | None


class Endings:
    """Ends, takedowns and publishing blocks, each audited with its actor and reason."""

    def __init__(
        self,
        bus: EventBus,
        streams: Streams,
        audit: AuditLog,
        store: StreamEnding,
        broadcasts: Broadcasts,
    ):
        self._bus = bus
        self._streams = streams
        self._audit_log = audit
        self._store = store
        self._broadcasts = broadcasts

    async def end(self, actor: User, stream: Stream, reason: str, block_for_s: int | None) -> Ended:
        """End the live broadcast now. Raises EndRefused, NotLive, BusUnavailable."""
        is_moderator = await self._streams.is_moderator(stream.id, actor.id)
        may_end = is_moderator and await self._store.moderators_may_end(stream.id)
        ended_by = ender_role(actor, stream, is_moderator=is_moderator, moderators_may_end=may_end)
        if block_for_s is not None and actor.role != "admin":
            raise EndRefused("only admins may block publishing")
        if stream.state != "live":
            raise NotLive(stream.slug)
        # The block first: a publisher reconnecting the moment its session closes is refused.
        block = None
        if block_for_s is not None:
            block = await self._store.block(stream.id, block_for_s, reason, actor.id)
        await announce_end(self._bus, stream.id, ended_by, reason)
        await self._end_now(stream.id)
        await self._audit("stream.end", actor, stream, reason, ended_by, block)
        return Ended(ended_by, block)

    async def take_down(self, actor: User, stream: Stream, reason: str, block_for_s: int) -> Ended:
        """Admins: end the live broadcast (if any), block publishing and take its recording
        down (it is never listed nor played). Raises EndRefused, BusUnavailable."""
        if actor.role != "admin":
            raise EndRefused("only admins may take a stream down")
        broadcast_id = await self._broadcasts.open_broadcast(stream.id)
        block = await self._store.block(stream.id, block_for_s, reason, actor.id)
        if stream.state == "live":
            await announce_end(self._bus, stream.id, "admin", reason)
            await self._end_now(stream.id)
        if broadcast_id is not None:
            await self._broadcasts.mark_deleted(broadcast_id)
        await self._audit("stream.takedown", actor, stream, reason, "admin", block, broadcast_id)
        return Ended("admin", block)

    async def _end_now(self, stream_id: int) -> None:
        await end_open_broadcast(self._broadcasts, stream_id)

    async def lift_block(self, actor: User, stream: Stream) -> bool:
        if actor.role != "admin":
            raise EndRefused("only admins may lift a publishing block")
        lifted = await self._store.lift(stream.id)
        if lifted:
            await self._audit_log.record(
                "stream.unblock", "stream", stream.id, actor_id=actor.id,
                details={"stream_id": stream.id},
            )  # fmt: skip
        return lifted

    async def _audit(
        self,
        action: str,
        actor: User,
        stream: Stream,
        reason: str,
        ended_by: EndedBy,
        block: PublishBlock | None,
        broadcast_id: int | None = None,
    ) -> None:
        await self._audit_log.record(
            action, "stream", stream.id, actor_id=actor.id,
            details={
                "stream_id": stream.id, "slug": stream.slug, "reason": reason,
                "ended_by": ended_by, "was_live": stream.state == "live",
                "blocked_until": block.until.isoformat() if block else None,
                "broadcast_id": broadcast_id,
            },
        )  # fmt: skip


class _Session(Protocol):
    @property
    def id(self) -> str: ...


class LocalPublishers(Protocol):
    """This node's publishing sessions (livecore.sfu.publisher.Publishers)."""

    def for_stream(self, stream_id: int) -> _Session | None: ...

    async def stop(self, session_id: str) -> bool:
        """End the session and its broadcast, as its publisher's own DELETE does."""
        ...


class LiveEnder:
    """On the node ingesting a stream: hears ends announced on any node and stops the
    stream's publisher here. `watch` at go-live, `unwatch` at the end (both synchronous)."""

    def __init__(self, bus: EventBus, publishers: LocalPublishers) -> None:
        self._bus = bus
        self._publishers = publishers
        self._unsubscribe: dict[int, Callable[[], None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._requested: set[int] = set()  # streams whose end was asked, until they end

    def watch(self, stream_id: int) -> None:
        self._requested.discard(stream_id)  # a new broadcast
        if stream_id not in self._unsubscribe:
            self._unsubscribe[stream_id] = self._bus.subscribe(stream_id, self._heard)

    def unwatch(self, stream_id: int) -> None:
        unsubscribe = self._unsubscribe.pop(stream_id, None)
        if unsubscribe is not None:
            unsubscribe()

    def ended_on_request(self, stream_id: int) -> bool:
        """Whether the broadcast of `stream_id` that just ended here was ended on request (by
        this listener), not by its publisher leaving. Asked once per end."""
        if stream_id in self._requested:
            self._requested.discard(stream_id)
            return True
        return False

    def _heard(self, event: Event) -> None:
        # Called by the bus on its delivery path: must not block, so the stop is a task.
        if event.kind != "stream_state" or b'"ended_by"' not in event.body:
            return
        self._requested.add(event.room)
        data = event.data()
        logger.info(
            "stream %d: broadcast ended on request (%s), closing its publisher",
            event.room, data.get("ended_by"),
        )  # fmt: skip
        task = asyncio.create_task(self._stop(event.room), name=f"end-stream:{event.room}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop(self, stream_id: int) -> None:
        try:
            session = self._publishers.for_stream(stream_id)
            if session is not None:
                await self._publishers.stop(session.id)
        except Exception:
            logger.exception("stream %d: could not end the broadcast", stream_id)

    async def close(self) -> None:
        for stream_id in list(self._unsubscribe):
            self.unwatch(stream_id)
        # Stops under way finish: each is one peer connection closing.
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def end_after_key_rotation(bus: EventBus, stream_id: int) -> None:
    """End the broadcast the old key may have started. The old key is refused already; when
    other nodes cannot be reached, this node's viewers are told at least."""
    await announce_end(bus, stream_id, "key_rotation", KEY_ROTATION_REASON, everywhere=False)
