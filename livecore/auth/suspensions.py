"""Suspended accounts as the rest of auth sees them: refused logins and sessions, the
words that tell the account holder why, and the event that reaches every node at once.

A suspension revokes the user's sessions (livecore.store.suspensions); a session of a
suspended user is not honoured even if one slipped past (livecore.store.sessions), and a
request made with one is answered 403 `account_suspended` with the reason and the end,
as a login is. The `account_revoked` event on ACCOUNTS_ROOM tells every node to drop the
user's cached sessions and close their chat sockets (livecore.admin.accounts listens).
"""

from __future__ import annotations

from typing import Final, Literal

from livecore.errors import Forbidden
from livecore.events.bus import EventBus
from livecore.events.types import AccountRevoked, Event
from livecore.store.suspensions import Suspension, Suspensions

# No stream has id 0 (ids start at 1): the bus room for account-wide events.
ACCOUNTS_ROOM: Final = 0
ACCOUNT_REVOKED: Final = "account_revoked"


class Suspended(Exception):
    """The account is suspended: it may do nothing but read why."""

    def __init__(self, suspension: Suspension) -> None:
        super().__init__(suspension_text(suspension))
        self.suspension = suspension


class AccountSuspended(Forbidden):
    code = "account_suspended"


async def refuse_suspended(suspensions: Suspensions, user_id: int) -> None:
    """Raise Suspended when the user's account is suspended (checked at login once the
    password is right: the reason is the account holder's business)."""
    if (suspension := await suspensions.active(user_id)) is not None:
        raise Suspended(suspension)


def suspension_text(suspension: Suspension) -> str:
    until = suspension.until
    when = f"until {until.isoformat()}" if until is not None else "until further notice"
    return f"this account is suspended {when}: {suspension.reason}"


def refusal(suspension: Suspension) -> AccountSuspended:
    """The 403 for any request of a suspended account: `fields` carries reason and end
    ("" for an indefinite suspension) for pages that show them apart."""
    until = suspension.until.isoformat() if suspension.until is not None else ""
    return AccountSuspended(
        suspension_text(suspension), fields={"reason": suspension.reason, "until": until}
    )


# Why an account's cached sessions are dropped: "suspended" and "deleted" (livecore.rights)
# also close its chat sockets; "role" only makes every node read the new role at once.
Why = Literal["suspended", "role", "deleted"]


async def announce_revoked(bus: EventBus, user_id: int, why: Why) -> None:
    """Tell every node to drop the user's cached sessions (and, suspended, close their chat
    sockets). When other nodes cannot be reached, their cached sessions still lapse within
    auth.session_cache_s: the store no longer honours a suspended user's sessions."""
    await bus.publish(ACCOUNTS_ROOM, AccountRevoked(user_id, why))


def revoked_user(event: Event) -> tuple[int, str] | None:
    """(user id, why) of an `account_revoked` event; None for any other event."""
    if event.kind != ACCOUNT_REVOKED:
        return None
    data = event.data()
    return int(data["user_id"]), str(data.get("why", ""))
