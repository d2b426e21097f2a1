"""The accounts part of the app: the repositories other parts read (accounts, stream rows,
the audit log), the account service with its mailer, two-factor authentication, and the
account and 2FA routes. Only app.py imports this module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from livecore.appkeys import AUDIT, AUTH, CONFIG, DB, SECRET_KEY, STREAM_RECORDS, TWO_FACTOR, USERS
from livecore.auth import routes, twofactor_routes
from livecore.auth.mail import LogMailSender, MailSender, SmtpMailSender, SmtpSettings
from livecore.auth.service import AuthService
from livecore.auth.twofactor import TwoFactorService
from livecore.config import Config
from livecore.store.audit import AuditLog
from livecore.store.streams import Streams
from livecore.store.users import Users

logger = logging.getLogger(__name__)


def setup(app: web.Application, mailer: MailSender | None = None) -> None:
    """Add the context and the routes; `mailer` replaces the configured one (tests)."""
    app.cleanup_ctx.append(_context(mailer or _mailer(app[CONFIG])))
    routes.setup(app)
    twofactor_routes.setup(app)


def _mailer(config: Config) -> MailSender:
    a = config.auth
    if not a.smtp_host:
        return LogMailSender()
    return SmtpMailSender(
        SmtpSettings(a.smtp_host, a.smtp_port, a.smtp_starttls, a.smtp_username,
                     a.smtp_password, a.mail_from)
    )  # fmt: skip


def _context(mailer: MailSender) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        db = app[DB]
        app[USERS], app[STREAM_RECORDS], app[AUDIT] = Users(db), Streams(db), AuditLog(db)
        auth = app[AUTH] = AuthService(
            db, config.auth, mailer, public_url=config.public_url,
            hash_workers=max(1, min(4, os.cpu_count() or 1)),
        )  # fmt: skip
        # Accounts made before display names were unique (the name_key migration), or by an older
        # node during a rolling upgrade, get their name key before anyone registers here.
        filled, kept = await auth.fill_name_keys()
        if filled or kept:
            logger.info(
                "display names: %d accounts given their comparison key; %d share the name of "
                "an older account and keep it", filled, kept,
            )  # fmt: skip
        two_factor = app[TWO_FACTOR] = TwoFactorService(
            db, config.auth, app[SECRET_KEY], auth.passwords
        )
        # Secrets stored before they were encrypted at rest (or by an older node during a
        # rolling upgrade) are encrypted before this node serves: no plaintext is left.
        sealed = await two_factor.seal_plaintext()
        if sealed:
            logger.info("two-factor secrets: %d stored in plaintext, now encrypted", sealed)
        yield
        await auth.close()

    return context
