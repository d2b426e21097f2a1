"""HTTP side of livecore.rights: `GET /api/v1/me/export` and `DELETE /api/v1/me`.

The export is a download (Content-Disposition: attachment), at most once a minute per
account on each node (429 with Retry-After otherwise). Deleting takes {password, code?}:
the code is a current two-factor code (or a recovery code) when 2FA is on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from livecore.appkeys import AUDIT, AUTH, BUS, DB, SUBSCRIPTIONS, TWO_FACTOR, USERS
from livecore.auth.requests import CSRF_COOKIE, SESSION_COOKIE, require_user
from livecore.auth.secretbox import SecretUnreadable
from livecore.auth.service import BadCredentials, Throttled
from livecore.auth.throttle import FailureWindow, admit
from livecore.auth.twofactor import CodeRejected, NotEnabled
from livecore.auth.twofactor_routes import unreadable
from livecore.clientip import client_ip
from livecore.errors import BadGateway, Conflict, Invalid, TooManyRequests, Unavailable
from livecore.jsonbody import read_body
from livecore.rights.deletion import (
    AccountDeletion,
    AlreadyDeleted,
    CodeRequired,
    MoneyOwed,
    password_failures,
)
from livecore.rights.export import export_document
from livecore.store.admin_users import AdminUsers, LastAdmin
from livecore.store.broadcasts import Broadcasts
from livecore.store.data_rights import DataRights
from livecore.tips.providers import PaymentDeclined, ProcessorRefused, ProviderUnavailable

EXPORT_EVERY_S: Final = 60.0
_EXPORTS: Final = web.AppKey("data_exports", FailureWindow)
_PASSWORDS: Final = web.AppKey("deletion_password_failures", FailureWindow)


def setup(app: web.Application) -> None:
    app[_EXPORTS] = FailureWindow(1, EXPORT_EVERY_S)
    app[_PASSWORDS] = password_failures()
    app.router.add_get("/api/v1/me/export", get_export)
    app.router.add_delete("/api/v1/me", delete_me)


async def get_export(request: web.Request) -> web.Response:
    """The logged-in account's data as a JSON download."""
    principal = await require_user(request)
    user = principal.user
    wait = admit((request.app[_EXPORTS], str(user.id)))
    if wait > 0:
        raise TooManyRequests(
            "an export was made a moment ago: try again in a minute", retry_after_s=int(wait) + 1
        )
    document = await export_document(DataRights(request.app[DB]), user)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    await request.app[AUDIT].record(
        "user.data_exported", "user", user.id, actor_id=user.id, client_ip=client_ip(request)
    )
    return web.json_response(
        document,
        headers={
            "Content-Disposition": f'attachment; filename="livecore-data-{user.id}-{day}.json"',
            "Cache-Control": "no-store",
        },
    )


async def delete_me(request: web.Request) -> web.Response:
    """Delete the logged-in account (see livecore.rights.deletion for what that does)."""
    principal = await require_user(request)
    body = await read_body(request)
    password = body.text("password", max_len=1024)
    code = body.text("code", max_len=64) if "code" in body else None
    body.check()
    app = request.app
    deletion = AccountDeletion(
        DataRights(app[DB]), app[AUTH], app[TWO_FACTOR], app[SUBSCRIPTIONS], app[BUS],
        app[USERS], AdminUsers(app[DB]), app[AUDIT], app[_PASSWORDS], Broadcasts(app[DB]),
    )  # fmt: skip
    try:
        deleted = await deletion.delete(
            principal.user, password, code, client_ip=client_ip(request)
        )
    except BadCredentials:
        raise Invalid("the password is wrong", fields={"password": "is wrong"}) from None
    except CodeRequired:
        raise Invalid(
            "two-factor authentication is on: a current code is needed too",
            fields={"code": "is required: two-factor authentication is on"},
        ) from None
    except (CodeRejected, NotEnabled):
        raise Invalid(
            "the code is wrong or expired", fields={"code": "is wrong or expired"}
        ) from None
    except SecretUnreadable:
        raise unreadable() from None
    except Throttled as exc:
        raise TooManyRequests(
            "too many wrong attempts, try again later", retry_after_s=int(exc.retry_after_s) + 1
        ) from None
    except MoneyOwed as exc:
        owed = ", ".join(f"{amount} {currency}" for currency, amount in exc.owed.items())
        raise Conflict(
            f"money is owed to this account ({owed}, in minor units): ask for a payout and"
            " delete the account once it is paid",
            fields={currency: str(amount) for currency, amount in exc.owed.items()},
        ) from None
    except LastAdmin:
        raise Conflict("this is the last admin account: make another account admin first") from None
    except AlreadyDeleted:
        raise Conflict("this account is deleted already") from None
    except ProviderUnavailable:
        raise Unavailable(
            "the payment processor cannot be reached to cancel your subscriptions; nothing was"
            " deleted: try again later"
        ) from None
    except (ProcessorRefused, PaymentDeclined) as exc:
        raise BadGateway(
            f"the payment processor refused to cancel a subscription: {exc.reason}; nothing"
            " was deleted"
        ) from None
    resp = web.json_response({
        "deleted": True,
        "canceled_subscriptions": deleted.canceled_subscriptions,
        "ended_streams": deleted.ended_streams,
        "unreached_streams": deleted.unreached_streams,
    })  # fmt: skip
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        resp.del_cookie(name, path="/")
    return resp
