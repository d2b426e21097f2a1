"""Deleting an account: proven by its password (and a current code when two-factor
authentication is on), refused while money is owed to it, audited.

In order, so that a refusal or a processor that cannot be reached leaves the account as it
was: the checks; then every subscription still renewing that the account pays or is paid
is canceled at the end of its paid period through the subscription service (the processor
is told); then the account's live broadcasts end on every node; then its personal data is
removed in one transaction (livecore.store.data_rights) and every node drops its cached
sessions and closes its chat sockets (the `account_revoked` event, as for a suspension).
Ledger entries, tips, payouts and subscriptions stay, as money records must.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from livecore.auth.service import AuthService, BadCredentials, Throttled
from livecore.auth.suspensions import announce_revoked
from livecore.auth.throttle import FailureWindow
from livecore.auth.twofactor import TwoFactorService
from livecore.events.bus import BusUnavailable, EventBus
from livecore.store.admin_users import AdminUsers, LastAdmin
from livecore.store.audit import AuditLog
from livecore.store.broadcasts import Broadcasts
from livecore.store.data_rights import DELETED_NAME, DataRights
from livecore.store.users import User, Users
from livecore.streams.ending import BLOCK_MAX_S, end_all
from livecore.tips.subscriptions import SubscriptionOver, SubscriptionService

logger = logging.getLogger(__name__)

# What viewers of an ended broadcast read, and the publishing block's reason.
DELETED_REASON = "the account was deleted"
# Wrong passwords per account before deleting is refused for a while: a stolen session must
# not become a way to guess the password.
PASSWORD_FAILURES = 5
PASSWORD_WINDOW_S = 900.0


def password_failures() -> FailureWindow:
    return FailureWindow(PASSWORD_FAILURES, PASSWORD_WINDOW_S)


class CodeRequired(Exception):
    """Two-factor authentication is on: deleting needs a current code too."""


class MoneyOwed(Exception):
    """The ledger owes the account money (or a payout is on its way): it is paid out first."""

    def __init__(self, owed: dict[str, int]) -> None:
        super().__init__(", ".join(f"{v} {c}" for c, v in owed.items()))
        self.owed = owed


class AlreadyDeleted(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Deleted:
    canceled_subscriptions: list[int]
    ended_streams: list[str]
    unreached_streams: list[str]  # ended on this node only: Redis could not be reached


class AccountDeletion:
    def __init__(
        self,
        data: DataRights,
        auth: AuthService,
        two_factor: TwoFactorService,
        subscriptions: SubscriptionService,
        bus: EventBus,
        users: Users,
        admin_users: AdminUsers,
        audit: AuditLog,
        failures: FailureWindow,
        broadcasts: Broadcasts,
    ) -> None:
        self._data = data
        self._auth = auth
        self._two_factor = two_factor
        self._subscriptions = subscriptions
        self._bus = bus
        self._users = users
        self._admin_users = admin_users
        self._audit = audit
        self._failures = failures  # wrong passwords, kept across requests (password_failures)
        self._broadcasts = broadcasts

    async def delete(
        self, user: User, password: str, code: str | None, *, client_ip: str
    ) -> Deleted:
        """Raises BadCredentials, CodeRequired, CodeRejected, Throttled, MoneyOwed, LastAdmin,
        AlreadyDeleted, and the processor's ProviderUnavailable or refusals."""
        key = str(user.id)
        if (wait := self._failures.retry_after_s(key)) > 0:
            raise Throttled(wait)
        stored = await self._users.password_hash(user.id)
        if not await self._auth.passwords.verify(stored, password):
            self._failures.fail(key)
            await self._audit.record(
                "user.delete_refused", "user", user.id, actor_id=user.id, client_ip=client_ip,
                details={"why": "wrong password"},
            )  # fmt: skip
            raise BadCredentials()
        if await self._two_factor.enabled(user.id):
            if not code:
                raise CodeRequired()
            await self._two_factor.check_code(user, code, client_ip=client_ip)
        if owed := await self._data.money_owed(user.id):
            raise MoneyOwed(owed)
        if await self._data.is_last_admin(user.id):
            raise LastAdmin()
        canceled = await self._cancel_subscriptions(user)
        ended, unreached = await self._end_broadcasts(user)
        revoked = await self._data.anonymise(user.id, BLOCK_MAX_S, DELETED_REASON)
        if revoked is None:
            raise AlreadyDeleted()
        self._auth.forget_user(user.id)
        await self._rename_in_rooms(user)
        try:
            await announce_revoked(self._bus, user.id, "deleted")
        except BusUnavailable:
            # The sessions are revoked in the database: other nodes' caches lapse within
            # auth.session_cache_s, and their chat sockets close at the next session check.
            logger.warning("user %d deleted: other nodes could not be told at once", user.id)
        await self._audit.record(
            "user.delete", "user", user.id, actor_id=user.id, client_ip=client_ip,
            details={
                "canceled_subscriptions": ",".join(map(str, canceled)),
                "ended_streams": ",".join(ended), "unreached_streams": ",".join(unreached),
                "sessions_revoked": len(revoked),
            },
        )  # fmt: skip
        return Deleted(canceled, ended, unreached)

    async def _rename_in_rooms(self, user: User) -> None:
        """The rooms' recent history (in memory, or in Redis for every node) shows the
        tombstone name too, as the stored lines already do."""
        for room in await self._data.rooms_of(user.id):
            try:
                await self._bus.rename_in_history(room, user.id, DELETED_NAME)
            except BusUnavailable:
                # The stored lines are renamed: a history Redis loses is taken up from them.
                logger.warning("user %d deleted: room %d's history not renamed", user.id, room)

    async def _cancel_subscriptions(self, user: User) -> list[int]:
        """Cancel, at the end of the period already paid, what the account pays and what is
        paid to it; nothing is charged again. Raises the processor's errors."""
        canceled = []
        for subscription_id, viewer_id in await self._data.open_subscriptions(user.id):
            viewer = user if viewer_id == user.id else await self._users.get(viewer_id)
            if viewer is None:
                continue
            try:
                await self._subscriptions.set_cancel_at_period_end(viewer, subscription_id, True)
            except SubscriptionOver:
                continue  # it ended meanwhile
            canceled.append(subscription_id)
        return canceled

    async def _end_broadcasts(self, user: User) -> tuple[list[str], list[str]]:
        # The publishing block (set with the deletion) refuses the publishers' reconnects.
        live = await self._admin_users.live_streams_of(user.id)
        return await end_all(
            self._bus, self._audit, self._broadcasts, live, "owner", DELETED_REASON, user.id
        )
