"""Chat rules: who may say what, and moderators' actions. Plain asyncio over the bus and store.

A message is refused with a reason (never dropped silently): banned or timed out, a
subscribers-only room, empty or too long, a link where links are off, a banned term, slow
mode, the rate limit, or the same message again. Every moderation action is written to
PostgreSQL and the audit log, then published on the bus so every node applies it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

from livecore.chat.greeting import Greeter, Greeting, greeting
from livecore.chat.limits import DuplicateFilter, LimiterUnavailable, RateLimiter
from livecore.chat.room import Room
from livecore.chat.state import RoomState, room_mode, settings_json
from livecore.chat.text import BannedTerms, check_message, normalise
from livecore.events.bus import BusUnavailable, EventBus
from livecore.events.types import (
    ChatDeleted,
    ChatLine,
    Speaker,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
)
from livecore.store.audit import AuditLog
from livecore.store.chat import BanEntry, ChatStore, Report, RoomSettings
from livecore.store.streams import Stream, Streams
from livecore.store.users import User

logger = logging.getLogger(__name__)

# The subscribers-only check payments plug in; None admits only the stream's staff.
ChatCheck = Callable[[User, Stream], Awaitable[bool]]
Badge = Literal["owner", "moderator", "admin", "subscriber"]

_PERSIST_QUEUE = 10_000  # lines waiting to be stored; beyond this a line is refused
_PERSIST_BATCH = 500
# A chat line to store: stream id, event id, user id, text, the event's body.
_Line = tuple[int, int, int | None, str, str]


class Refused(Exception):
    """A message or action refused, with a code clients can act on and a message people read."""

    def __init__(self, code: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # When trying again makes sense (slow mode, a timeout, the rate limit): clients count
        # it down instead of reading the number out of the message.
        self.retry_after_s = retry_after_s


class UnknownUser(LookupError):
    """A moderation action named a user id that has no account."""


class ChatService:
    def __init__(
        self,
        bus: EventBus,
        store: ChatStore,
        streams: Streams,
        audit: AuditLog,
        *,
        rate_limiter: RateLimiter,
        fallback_limiter: RateLimiter,
        duplicates: DuplicateFilter,
        may_chat_extra: ChatCheck | None = None,
        on_line: Callable[[int, int, int, str], None] | None = None,
    ) -> None:
        self._bus = bus
        self._store = store
        self._streams = streams
        self._audit = audit
        self._limiter = rate_limiter
        self._fallback_limiter = fallback_limiter
        self._duplicates = duplicates
        self._may_chat_extra = may_chat_extra
        self._terms: dict[int, BannedTerms] = {}
        self._persist: asyncio.Queue[tuple[_Line, asyncio.Future[bool]]] = asyncio.Queue(
            _PERSIST_QUEUE
        )
        self.unsaved = 0
        # Told of each stored line (stream id, line id, user id, text): the screening hook
        # (wiring/moderation.py); it must return at once (it only queues the line).
        self._on_line = on_line

    # -- room state ---------------------------------------------------------------------------

    async def state(self, room: Room) -> RoomState:
        if room.state is None or room.state.stale:
            settings = await self._store.settings(room.stream_id)
            if room.state is None:
                room.state = RoomState.load(settings, await self._store.active_bans(room.stream_id))
            else:
                room.state.settings, room.state.stale = settings, False
            self._terms[room.stream_id] = await _compile_terms(settings.banned_terms)
        return room.state

    async def greeting(self, room: Room) -> Greeting:
        """The room's mode and history for a socket just added to it (shared by the joins
        that arrive together: greeting.py)."""
        greeter = room.greeter
        if greeter is None:

            async def read() -> Greeting:
                state = await self.state(room)
                return greeting(settings_json(state.settings), await self.history(room.stream_id))

            greeter = room.greeter = Greeter(read, lambda: room.events_seen)
        return await greeter.get()

    async def badges(self, user: User, stream: Stream) -> list[Badge]:
        badges: list[Badge] = []
        if user.id == stream.owner_id:
            badges.append("owner")
        if user.role == "admin":
            badges.append("admin")
        if await self._streams.is_moderator(stream.id, user.id):
            badges.append("moderator")
        return badges

    async def is_staff(self, user: User, stream: Stream) -> bool:
        return (
            user.role == "admin"
            or user.id == stream.owner_id
            or await self._streams.is_moderator(stream.id, user.id)
        )

    # -- sending --------------------------------------------------------------------------------

    async def send(
        self, room: Room, stream: Stream, user: User, badges: list[Badge], text: str, nonce: str
    ) -> int:
        """Publish a chat line; returns its event id, or raises Refused with the reason."""
        state = await self.state(room)
        settings = state.settings
        staff = bool(badges)
        left = state.banned_for_s(user.id)
        if left is not None:
            if left == float("inf"):
                raise Refused("banned", "you are banned from this chat")
            raise Refused("timed_out", f"you are timed out for {int(left) + 1} more seconds", left)
        if settings.subscribers_only and not staff and not await self._may_chat(user, stream):
            raise Refused("subscribers_only", "this chat is for subscribers only")
        refusal = check_message(
            text,
            max_length=settings.max_length,
            links_allowed=settings.links_allowed or staff,
            banned=self._terms.get(stream.id) or BannedTerms(()),
        )
        if refusal is not None:
            raise Refused(refusal.code, refusal.message)
        now = time.monotonic()
        if settings.slow_mode_s and not staff:
            since = now - state.last_chat_at.get(user.id, -1e9)
            if since < settings.slow_mode_s:
                wait = int(settings.slow_mode_s - since) + 1
                raise Refused(
                    "slow_mode",
                    f"slow mode: wait {wait} more seconds",
                    settings.slow_mode_s - since,
                )
        wait_s = await self._rate_limit(f"{stream.id}:{user.id}")
        if wait_s > 0:
            raise Refused("rate_limited", f"too many messages: wait {wait_s:.1f} seconds", wait_s)
        if not await self._duplicates.first_time(f"{stream.id}:{user.id}", normalise(text)):
            raise Refused("duplicate", "you just sent this message")
        state.last_chat_at[user.id] = now
        # The server decides who sent it: user fields come from the session, never the client.
        line = ChatLine(Speaker(user.id, user.display_name, tuple(badges)), text)
        try:
            # Every node or none: a line only this node's viewers saw could not be moderated
            # or answered elsewhere.
            event = await self._bus.publish(stream.id, line, local_fallback=False)
        except BusUnavailable:
            raise Refused("unavailable", "chat is unavailable right now; try again") from None
        # The ack means stored: a line that cannot be stored is taken back from the room.
        if not await self._store_line((stream.id, event.id, user.id, text, event.body.decode())):
            self.unsaved += 1
            logger.error("room %d: chat line %d was not stored; taken back", stream.id, event.id)
            with contextlib.suppress(Exception):
                await self._bus.publish(stream.id, ChatDeleted(event.id))
            raise Refused("not_stored", "your message could not be saved; try again")
        if self._on_line is not None:
            self._on_line(stream.id, event.id, user.id, text)
        return event.id

    async def _store_line(self, row: _Line) -> bool:
        """Store a line with the next batch; True once it is stored."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        try:
            self._persist.put_nowait((row, done))
        except asyncio.QueueFull:
            return False
        return await done

    async def _rate_limit(self, key: str) -> float:
        try:
            return await self._limiter.allow(key)
        except LimiterUnavailable:
            # Redis is out: the node's own limiter keeps the room safe meanwhile.
            return await self._fallback_limiter.allow(key)

    async def _may_chat(self, user: User, stream: Stream) -> bool:
        return self._may_chat_extra is not None and await self._may_chat_extra(user, stream)

    async def run_persister(self) -> None:
        """Store chat lines in batches (moderation, reports and history need them), and tell
        each line's sender whether it was stored."""
        while True:
            batch = [await self._persist.get()]
            while len(batch) < _PERSIST_BATCH and not self._persist.empty():
                batch.append(self._persist.get_nowait())
            try:
                stored = await self._store.save_messages([row for row, _ in batch])
            except asyncio.CancelledError:
                for _, done in batch:
                    done.cancel()  # shutting down: their senders are told nothing was acked
                raise
            except Exception:
                logger.exception("could not store %d chat messages", len(batch))
                stored = set()
            finally:
                for _ in batch:
                    self._persist.task_done()
            for row, done in batch:
                if not done.done():
                    done.set_result((row[0], row[1]) in stored)

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until queued messages are stored (shutdown, tests)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._persist.join()

    # -- moderation -----------------------------------------------------------------------------

    async def delete_message(self, stream: Stream, message_id: int, actor: User) -> None:
        await self._store.mark_deleted(stream.id, message_id)
        await self._audit.record(
            "chat.delete", "stream", stream.id, actor_id=actor.id,
            details={"message_id": message_id},
        )  # fmt: skip
        await self._bus.publish(stream.id, ChatDeleted(message_id))

    async def timeout(
        self, stream: Stream, user_id: int, seconds: int, actor: User, reason: str
    ) -> float:
        ban = await self._store.ban(stream.id, user_id, seconds=seconds, reason=reason, by=actor.id)
        if ban is None:
            raise UnknownUser(user_id)
        assert ban.until is not None
        until = ban.until.timestamp()
        await self._audit.record(
            "chat.timeout", "user", user_id, actor_id=actor.id,
            details={"stream_id": stream.id, "seconds": seconds, "reason": reason},
        )  # fmt: skip
        await self._bus.publish(stream.id, UserTimedOut(user_id, until, seconds))
        return until

    async def ban(self, stream: Stream, user_id: int, actor: User, reason: str) -> None:
        ban = await self._store.ban(stream.id, user_id, seconds=None, reason=reason, by=actor.id)
        if ban is None:
            raise UnknownUser(user_id)
        await self._audit.record(
            "chat.ban", "user", user_id, actor_id=actor.id,
            details={"stream_id": stream.id, "reason": reason},
        )  # fmt: skip
        await self._bus.publish(stream.id, UserBanned(user_id))

    async def unban(self, stream: Stream, user_id: int, actor: User) -> bool:
        removed = await self._store.unban(stream.id, user_id)
        await self._audit.record(
            "chat.unban", "user", user_id, actor_id=actor.id, details={"stream_id": stream.id}
        )
        await self._bus.publish(stream.id, UserUnbanned(user_id))
        return removed

    async def update_settings(
        self, stream: Stream, actor: User, changes: dict[str, Any]
    ) -> RoomSettings:
        current = await self._store.settings(stream.id)
        saved = await self._store.save_settings(stream.id, replace(current, **changes))
        self._terms[stream.id] = await _compile_terms(saved.banned_terms)
        await self._audit.record(
            "chat.settings", "stream", stream.id, actor_id=actor.id,
            details={k: str(v) for k, v in changes.items()},
        )  # fmt: skip
        # Viewers see how many terms are banned, never the list itself.
        await self._bus.publish(stream.id, room_mode(saved))
        return saved

    # -- reads for the API and the socket -------------------------------------------------------

    async def history(self, stream_id: int) -> list[bytes]:
        return await self._bus.history(stream_id)

    async def settings(self, stream: Stream) -> RoomSettings:
        return await self._store.settings(stream.id)

    async def report(self, stream: Stream, message_id: int, reporter: User, reason: str) -> int:
        """Queue a message for moderators; LookupError if there is no such message."""
        if await self._store.message(stream.id, message_id) is None:
            raise LookupError(message_id)
        return await self._store.report(stream.id, message_id, reporter.id, reason)

    async def ban_list(self, stream: Stream) -> list[BanEntry]:
        return await self._store.ban_list(stream.id)

    async def reports(self, stream: Stream, state: str) -> list[Report]:
        return await self._store.reports(stream.id, state=state)

    async def resolve_report(self, stream: Stream, report_id: int, state: str, actor: User) -> bool:
        done = await self._store.resolve_report(stream.id, report_id, state=state, by=actor.id)
        if done:
            await self._audit.record(
                f"chat.report_{state}", "stream", stream.id, actor_id=actor.id,
                details={"report_id": report_id},
            )  # fmt: skip
        return done

    async def screen(self, stream_id: int, text: str) -> str:
        """A tip's message as the room may show it: empty when chat rules would refuse it."""
        if not text:
            return ""
        settings = await self._store.settings(stream_id)
        refusal = check_message(
            text, max_length=settings.max_length, links_allowed=settings.links_allowed,
            banned=self._terms.get(stream_id) or await _compile_terms(settings.banned_terms),
        )  # fmt: skip
        return "" if refusal is not None else text


async def _compile_terms(terms: tuple[str, ...]) -> BannedTerms:
    # Compiling costs about 0.2 ms a term: a long list is built off the event loop.
    if len(terms) > 50:
        return await asyncio.to_thread(BannedTerms, terms)
    return BannedTerms(terms)
