"""Where the safety package meets the ones it may not import: the review queue's actions on
rooms (chat/), live broadcasts (streams/) and accounts (admin/), each done as the owning
package's own route does it; the screener the configuration names (it reuses the chat's
banned-terms matching); and the chat's screening hook, which offers each stored line to the
screening queue (wiring/media.py offers the origin's thumbnails and the streams going live).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web

from livecore.admin.accounts import Accounts, SelfSuspension, UnknownUser
from livecore.appkeys import (
    AUDIT,
    AUTH,
    BUS,
    CHAT,
    DB,
    SCREENING,
    STREAM_RECORDS,
    USERS,
)
from livecore.chat.text import BannedTerms
from livecore.config import Config
from livecore.events.bus import BusUnavailable
from livecore.safety.screening import BannedTermsScreener, NoScreener, Screener, Subject
from livecore.safety.service import ActionFailed, NotApplicable
from livecore.store.broadcasts import Broadcasts
from livecore.store.reports import Reports
from livecore.store.stream_ending import StreamEnding
from livecore.store.streams import Stream
from livecore.store.users import User
from livecore.streams.ending import Endings, EndRefused, NotLive, check_reason


def actions(app: web.Application) -> tuple[RoomModeration, BroadcastEnder, AccountSuspender]:
    """The review queue's actions; they read the app's services when they act."""
    return RoomModeration(app), BroadcastEnder(app), AccountSuspender(app)


def screener(config: Config) -> Screener:
    if config.safety.screener == "banned_terms":
        return BannedTermsScreener(BannedTerms(config.safety.banned_terms))
    return NoScreener()


def screen_line(app: web.Application) -> Callable[[int, int, int, str], None]:
    """The chat's hook for each stored line (stream id, line id, user id, text): it is
    offered to the screening queue once the safety context has made it (never waits)."""

    def on_line(stream_id: int, line_id: int, user_id: int, text: str) -> None:
        if (screening := app.get(SCREENING)) is not None:
            screening.offer(Subject("chat_line", stream_id, user_id, text, line_id))

    return on_line


class RoomModeration:
    """The chat's moderation operations for the review queue, which knows streams by id."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def stream(self, stream_id: int) -> Stream:
        facts = await Reports(self._app[DB]).stream(stream_id)
        stream = await self._app[STREAM_RECORDS].by_slug(facts.slug) if facts else None
        if stream is None:
            raise LookupError(stream_id)
        return stream

    async def delete_line(self, stream_id: int, line_id: int, actor: User) -> None:
        chat = self._app[CHAT].service
        await chat.delete_message(await self.stream(stream_id), line_id, actor)

    async def timeout(
        self, stream_id: int, user_id: int, seconds: int, actor: User, reason: str
    ) -> None:
        chat = self._app[CHAT].service
        await chat.timeout(await self.stream(stream_id), user_id, seconds, actor, reason)

    async def ban(self, stream_id: int, user_id: int, actor: User, reason: str) -> None:
        chat = self._app[CHAT].service
        await chat.ban(await self.stream(stream_id), user_id, actor, reason)


class BroadcastEnder:
    """Ending a live broadcast from the review queue, as `POST /api/v1/streams/{slug}/end`."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def end(self, stream_id: int, actor: User, reason: str) -> None:
        app = self._app
        if (problem := check_reason(reason)) is not None:
            raise NotApplicable(f"reason {problem}")
        stream = await RoomModeration(app).stream(stream_id)
        endings = Endings(
            app[BUS], app[STREAM_RECORDS], app[AUDIT], StreamEnding(app[DB]), Broadcasts(app[DB])
        )
        try:
            await endings.end(actor, stream, reason.strip(), None)
        except NotLive:
            raise NotApplicable("the stream is not live") from None
        except EndRefused as exc:
            raise NotApplicable(str(exc)) from None
        except BusUnavailable:
            raise ActionFailed("the other nodes cannot be reached; try again") from None


class AccountSuspender:
    """Suspending an account from the review queue, as `POST .../users/{id}/suspension`."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def suspend(self, user_id: int, actor: User, reason: str, seconds: int | None) -> None:
        app = self._app
        if (problem := check_reason(reason)) is not None:
            raise NotApplicable(f"reason {problem}")
        until = None
        if seconds is not None:
            until = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
        accounts = Accounts(app[DB], app[BUS], app[AUTH], app[USERS], app[AUDIT])
        try:
            await accounts.suspend(actor, user_id, reason.strip(), until)
        except UnknownUser:
            raise LookupError(user_id) from None
        except SelfSuspension:
            raise NotApplicable("an admin cannot suspend themselves") from None
