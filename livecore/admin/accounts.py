"""Suspending accounts, changing roles and deciding creator requests, each audited.

A suspension revokes the user's sessions in the same transaction that records it, then
tells every node over the event bus (livecore.auth.suspensions) to drop the user's cached
sessions and close their chat sockets, and ends each of their live broadcasts the way an
end asked for does (livecore.streams.ending, `ended_by` "platform"). While it is in force
the account can log in nowhere, and its streams' publishers are refused (WHIP 403); tips,
subscriptions and payouts all need a session, so they are refused too, and the money owed
stays in the ledger until the account may ask for it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from livecore.auth.service import AuthService
from livecore.auth.suspensions import ACCOUNTS_ROOM, announce_revoked, revoked_user
from livecore.chat.room import Rooms
from livecore.events.bus import EventBus
from livecore.events.types import Event
from livecore.store.admin_users import AdminUsers
from livecore.store.audit import AuditLog
from livecore.store.broadcasts import Broadcasts
from livecore.store.creator_requests import CreatorRequest, CreatorRequests
from livecore.store.db import Database
from livecore.store.suspensions import Suspension, Suspensions
from livecore.store.users import Role, User, Users
from livecore.streams.ending import end_all

logger = logging.getLogger(__name__)

# What a suspended or deleted user's chat sockets are closed with (a WebSocket close reason).
CLOSE_SUSPENDED = b"account suspended"
CLOSE_DELETED = b"account deleted"


class UnknownUser(Exception):
    pass


class SelfSuspension(Exception):
    """An admin may not suspend themselves (nobody could lift it but another admin)."""


class Accounts:
    def __init__(
        self, db: Database, bus: EventBus, auth: AuthService, users: Users, audit: AuditLog
    ) -> None:
        self._bus = bus
        self._auth = auth
        self._accounts = users
        self._audit = audit
        self._users = AdminUsers(db)
        self._suspensions = Suspensions(db)
        self._requests = CreatorRequests(db)
        self._broadcasts = Broadcasts(db)

    async def _target(self, user_id: int) -> User:
        user = await self._accounts.get(user_id)
        if user is None:
            raise UnknownUser(user_id)
        return user

    async def suspend(
        self, actor: User, user_id: int, reason: str, until: datetime | None
    ) -> tuple[Suspension, list[str], list[str]]:
        """Suspend the account (replacing a suspension in force); returns it, the slugs of
        the live broadcasts it ended, and those whose end reached this node alone (the other
        nodes could not be reached: the ingesting node may not have heard it). Raises
        UnknownUser, SelfSuspension."""
        target = await self._target(user_id)
        if target.id == actor.id:
            raise SelfSuspension()
        suspension, _ = await self._suspensions.suspend(target.id, reason, until, actor.id)
        self._auth.forget_user(target.id)
        await announce_revoked(self._bus, target.id, "suspended")
        # Heard by every node: viewers read why, and the ingesting node closes the publisher;
        # its reconnects are refused while the suspension lasts.
        live = await self._users.live_streams_of(target.id)
        ended, unreached = await end_all(
            self._bus, self._audit, self._broadcasts, live, "platform", reason, actor.id
        )
        await self._audit.record(
            "user.suspend", "user", target.id, actor_id=actor.id,
            details={
                "reason": reason, "until": until.isoformat() if until else None,
                "ended_streams": ",".join(ended), "unreached_streams": ",".join(unreached),
            },
        )  # fmt: skip
        return suspension, ended, unreached

    async def unsuspend(self, actor: User, user_id: int) -> bool:
        """Lift the suspension now; False when none was in force. Raises UnknownUser."""
        target = await self._target(user_id)
        lifted = await self._suspensions.lift(target.id, actor.id)
        if lifted:
            await self._audit.record("user.unsuspend", "user", target.id, actor_id=actor.id)
        return lifted

    async def set_role(self, actor: User, user_id: int, role: Role) -> Role:
        """Give the user `role`; their role before. Raises UnknownUser, LastAdmin."""
        before = await self._users.set_role(user_id, role)
        if before is None:
            raise UnknownUser(user_id)
        if before != role:
            self._auth.forget_user(user_id)
            await announce_revoked(self._bus, user_id, "role")
            await self._audit.record(
                "user.role_set", "user", user_id, actor_id=actor.id,
                details={"role": role, "before": before},
            )  # fmt: skip
        return before

    async def decide(self, actor: User, request_id: int, approve: bool) -> CreatorRequest | None:
        """Approve or decline a pending creator request; None when none is pending."""
        request = await self._requests.decide(request_id, approve, actor.id)
        if request is None:
            return None
        if approve:
            self._auth.forget_user(request.user_id)
            await announce_revoked(self._bus, request.user_id, "role")
        await self._audit.record(
            f"user.creator_request_{request.state}", "user", request.user_id,
            actor_id=actor.id, details={"request_id": request.id},
        )  # fmt: skip
        return request


class RevocationListener:
    """On every node: hears `account_revoked` and drops the user's cached sessions here; for
    a suspension or a deletion (livecore.rights), also closes the user's chat sockets on this
    node."""

    def __init__(self, bus: EventBus, auth: AuthService, rooms: Rooms) -> None:
        self._auth = auth
        self._rooms = rooms
        self._bus = bus
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        self._unsubscribe = self._bus.subscribe(ACCOUNTS_ROOM, self._heard)
        await self._bus.joined(ACCOUNTS_ROOM)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _heard(self, event: Event) -> None:
        revoked = revoked_user(event)
        if revoked is None:
            return
        user_id, why = revoked
        self._auth.forget_user(user_id)
        if why not in ("suspended", "deleted"):
            return
        closed = 0
        for room in self._rooms.all():
            for outbox in list(room.outboxes):
                if outbox.user_id == user_id:
                    outbox.shut(CLOSE_SUSPENDED if why == "suspended" else CLOSE_DELETED)
                    closed += 1
        if closed:
            logger.info("user %d %s: closed %d chat sockets here", user_id, why, closed)
