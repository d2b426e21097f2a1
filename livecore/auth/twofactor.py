"""Two-factor authentication: enrol, confirm, disable, recovery codes, and the code step of
a login.

Every code check is throttled like a password: per account, every attempt counts within
`auth.login_window_s` (up to `auth.login_max_failures`) and a good code clears the count;
per client address, failures count (up to `auth.login_ip_max_failures`). The per-account
count is taken before the code is checked, so a burst of concurrent guesses cannot all slip
in before the first failure is counted. Counted in memory per node, like logins.

The TOTP secret is stored encrypted (`secretbox.py`); one that does not decrypt fails the
code step with SecretUnreadable, never passes it.

Plain asyncio over the store; the HTTP side lives in `twofactor_routes.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from livecore.auth import totp
from livecore.auth.passwords import PasswordHashing
from livecore.auth.secretbox import PREFIX, SecretBox, SecretUnreadable
from livecore.auth.service import BadCredentials, Throttled
from livecore.auth.throttle import FailureWindow, admit
from livecore.config import AuthConfig
from livecore.store import Database
from livecore.store.audit import AuditLog
from livecore.store.twofactor import TwoFactor, TwoFactorSecrets
from livecore.store.users import User, Users

logger = logging.getLogger(__name__)


class CodeRejected(Exception):
    """The code is wrong, expired or used already (one answer for all three)."""


class NotEnrolling(Exception):
    """No enrolment waits for its first code."""


class AlreadyEnabled(Exception):
    pass


class NotEnabled(Exception):
    pass


class PendingLoginInvalid(Exception):
    """The pending-login token is forged, expired, or its password has changed since."""


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class TwoFactorStatus:
    enabled: bool
    enabled_at: datetime | None
    enrolling: bool  # a secret was handed out and waits for its first code
    recovery_codes_left: int


class TwoFactorService:
    def __init__(
        self,
        db: Database,
        settings: AuthConfig,
        secret_key: bytes,
        passwords: PasswordHashing,
    ) -> None:
        self._secrets = TwoFactorSecrets(db)
        self._users = Users(db)
        self._audit = AuditLog(db)
        self._key = secret_key
        self._box = SecretBox(secret_key)
        self._passwords = passwords
        self._issuer = settings.totp_issuer
        self._attempts = FailureWindow(settings.login_max_failures, settings.login_window_s)
        self._ip_failures = FailureWindow(settings.login_ip_max_failures, settings.login_window_s)

    async def enabled(self, user_id: int) -> bool:
        return await self._secrets.enabled(user_id)

    async def status(self, user_id: int) -> TwoFactorStatus:
        state = await self._secrets.get(user_id)
        if state is None:
            return TwoFactorStatus(False, None, False, 0)
        on = state.enabled_at is not None
        return TwoFactorStatus(on, state.enabled_at, not on, state.recovery_left if on else 0)

    async def enrol(self, user: User) -> Enrolment:
        """Hand out a new secret; 2FA is on only once `confirm` gets a code made from it.
        Starting again replaces a secret that was never confirmed."""
        secret = totp.new_secret()
        if not await self._secrets.start(user.id, self._box.seal(user.id, secret)):
            raise AlreadyEnabled()
        uri = totp.otpauth_uri(secret, user.email, self._issuer)
        return Enrolment(secret, uri, totp.qr_svg(uri))

    async def confirm(self, user: User, code: str, password: str, *, client_ip: str) -> list[str]:
        """Turn 2FA on with a first code from the app; the recovery codes, shown once.

        The password too, as for changing it: someone who found a logged-in browser must not
        be able to lock the account's owner out behind a phone they do not have.
        """
        state = await self._secrets.get(user.id)
        if state is None or state.enabled_at is not None:
            raise NotEnrolling()
        self._admit(user.id, client_ip)
        if not await self._passwords.verify(await self._users.password_hash(user.id), password):
            self._failed(client_ip)
            raise BadCredentials()
        step = totp.matching_step(self._open(state), code.strip())
        if step is None:
            self._failed(client_ip)
            raise CodeRejected()
        codes = totp.new_recovery_codes()
        if not await self._secrets.enable(user.id, step, self._hashes(user.id, codes)):
            raise NotEnrolling()  # confirmed by a concurrent request, or disabled meanwhile
        self._attempts.clear(str(user.id))
        await self._audit.record(
            "user.2fa_enabled", "user", user.id, actor_id=user.id, client_ip=client_ip
        )
        return codes

    async def disable(
        self, user: User, *, code: str | None, password: str | None, client_ip: str
    ) -> None:
        """Turn 2FA off, proven by a current code (or a recovery code) or by the password."""
        state = await self._secrets.get(user.id)
        if state is None or state.enabled_at is None:
            raise NotEnabled()
        if code is not None:
            await self._check(user, state, code, client_ip)
        else:
            self._admit(user.id, client_ip)
            stored = await self._users.password_hash(user.id)
            if not await self._passwords.verify(stored, password or ""):
                self._failed(client_ip)
                raise BadCredentials()
            self._attempts.clear(str(user.id))
        await self._secrets.disable(user.id)
        await self._audit.record(
            "user.2fa_disabled", "user", user.id, actor_id=user.id, client_ip=client_ip
        )

    async def renew_recovery_codes(self, user: User, code: str, *, client_ip: str) -> list[str]:
        """New recovery codes for a current code; the old ones stop working."""
        state = await self._secrets.get(user.id)
        if state is None or state.enabled_at is None:
            raise NotEnabled()
        await self._check(user, state, code, client_ip, recovery=False)
        codes = totp.new_recovery_codes()
        await self._secrets.replace_recovery(user.id, self._hashes(user.id, codes))
        await self._audit.record(
            "user.2fa_recovery_renewed", "user", user.id, actor_id=user.id, client_ip=client_ip
        )
        return codes

    async def check_code(self, user: User, code: str, *, client_ip: str) -> None:
        """Spend a current code (or a recovery code) for an act that needs one, such as
        deleting the account. Raises NotEnabled, CodeRejected, Throttled."""
        state = await self._secrets.get(user.id)
        if state is None or state.enabled_at is None:
            raise NotEnabled()
        await self._check(user, state, code, client_ip)

    # -- the code step of a login -----------------------------------------------------------

    def begin_login(self, required: totp.SecondFactorRequired) -> tuple[str, int]:
        """The pending-login token for a user whose password was just checked against
        `required.password_hash`, and when it expires (unix seconds)."""
        return totp.sign_pending(self._key, required.user_id, required.password_hash)

    async def finish_login(self, token: str, code: str, *, client_ip: str) -> User:
        """The user whose pending login this code (or recovery code) completes."""
        user_id = totp.pending_user(token)
        if user_id is None:
            raise PendingLoginInvalid()
        stored = await self._users.password_hash(user_id)
        if stored is None or totp.verify_pending(self._key, token, stored) is None:
            raise PendingLoginInvalid()
        user = await self._users.get(user_id)
        state = await self._secrets.get(user_id)
        if user is None or state is None or state.enabled_at is None:
            raise PendingLoginInvalid()  # 2FA turned off between the steps: start again
        try:
            await self._check(user, state, code, client_ip)
        except (CodeRejected, SecretUnreadable):
            await self._audit.record("user.login_2fa_failed", "user", user.id, client_ip=client_ip)
            raise
        return user

    # -- checking codes ---------------------------------------------------------------------

    async def _check(
        self, user: User, state: TwoFactor, code: str, client_ip: str, *, recovery: bool = True
    ) -> None:
        """Spend a TOTP code (or, with `recovery`, a recovery code) or raise CodeRejected."""
        self._admit(user.id, client_ip)
        code = code.strip()
        if totp.is_totp_code(code):
            step = totp.matching_step(self._open(state), code)
            ok = step is not None and await self._secrets.use_step(user.id, step)
        elif recovery and code:
            ok = await self._secrets.use_recovery(
                user.id, totp.recovery_hash(self._key, user.id, code)
            )
            if ok:
                await self._audit.record(
                    "user.2fa_recovery_used", "user", user.id, actor_id=user.id,
                    client_ip=client_ip,
                )  # fmt: skip
        else:
            ok = False
        if not ok:
            self._failed(client_ip)
            raise CodeRejected()
        self._attempts.clear(str(user.id))

    def _open(self, state: TwoFactor) -> str:
        """The secret, decrypted; SecretUnreadable (logged for the operator) when it does not
        decrypt. That is never a pass: the code step fails until the account's 2FA is reset."""
        try:
            return self._box.open(state.user_id, state.secret)
        except SecretUnreadable:
            logger.error(
                "two-factor secret of user %d does not decrypt: the secret key was replaced"
                " since it was stored, or the row was altered; `livecore user 2fa-off` resets"
                " the account's two-factor authentication",
                state.user_id,
            )
            raise

    async def seal_plaintext(self) -> int:
        """Encrypt every secret stored before encryption (at start); how many were."""
        sealed = 0
        for user_id, secret in await self._secrets.plaintext(PREFIX):
            if await self._secrets.replace_secret(user_id, secret, self._box.seal(user_id, secret)):
                sealed += 1
        return sealed

    def _admit(self, user_id: int, client_ip: str) -> None:
        wait = self._ip_failures.retry_after_s(client_ip)
        if wait <= 0:
            wait = admit((self._attempts, str(user_id)))
        if wait > 0:
            raise Throttled(wait)

    def _failed(self, client_ip: str) -> None:
        self._ip_failures.fail(client_ip)

    def _hashes(self, user_id: int, codes: list[str]) -> list[bytes]:
        return [totp.recovery_hash(self._key, user_id, c) for c in codes]
