"""Accounts and sessions: register, log in and out, passwords, resets, stream keys.

Plain asyncio over the store; the HTTP side lives in `routes.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from livecore.auth.identity import (
    check_display_name,
    check_email,
    normalise_display_name,
    normalise_email,
)
from livecore.auth.mail import Mail, MailSender
from livecore.auth.passwords import PasswordHashing, Passwords, password_problem
from livecore.auth.publish import is_publish_token, verify_publish
from livecore.auth.suspensions import refuse_suspended
from livecore.auth.throttle import FailureWindow, admit
from livecore.auth.tokens import (
    RESET_PREFIX,
    SESSION_PREFIX,
    STREAM_KEY_PREFIX,
    hash_secret,
    new_secret,
)
from livecore.auth.totp import SecondFactorRequired
from livecore.config import AuthConfig
from livecore.store import Database, UniqueViolation
from livecore.store.audit import AuditLog
from livecore.store.sessions import Session, SessionInfo, Sessions
from livecore.store.streams import Stream, Streams
from livecore.store.suspensions import Suspensions
from livecore.store.users import PasswordResets, Role, User, Users
from livecore.text import name_key

logger = logging.getLogger(__name__)

# Only touch last_seen_at this often per session, so that reading a cached session costs
# no database write.
_TOUCH_EVERY = timedelta(seconds=60)


class InvalidInput(Exception):
    """Some fields are wrong; `fields` maps each to what is wrong with it."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


class EmailTaken(Exception):
    pass


class DisplayNameTaken(Exception):
    """Another account's display name is the same as people read it (livecore.text.name_key)."""


class BadCredentials(Exception):
    pass


class Throttled(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"retry after {retry_after_s:.0f}s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    session_hash: bytes
    user: User
    expires_at: datetime


class AuthService:
    def __init__(
        self,
        db: Database,
        settings: AuthConfig,
        mailer: MailSender,
        *,
        public_url: str,
        hash_workers: int = 2,
        passwords: PasswordHashing | None = None,
    ) -> None:
        self._settings = settings
        self._mailer = mailer
        self._public_url = public_url.rstrip("/")
        self._users = Users(db)
        self._sessions = Sessions(db)
        self._streams = Streams(db)
        self._audit = AuditLog(db)
        self._resets = PasswordResets(db)
        self._suspensions = Suspensions(db)
        self.passwords = passwords or Passwords(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            workers=hash_workers,
        )
        # Sign-ups, from all addresses together, hash on at most all but one of the threads:
        # however many arrive, a login always finds a thread free.
        self._signup_hashing = asyncio.Semaphore(max(1, hash_workers - 1))
        self._account_failures = FailureWindow(settings.login_max_failures, settings.login_window_s)
        self._ip_failures = FailureWindow(settings.login_ip_max_failures, settings.login_window_s)
        signup_window, reset_window = settings.register_window_s, settings.reset_window_s
        self._signups = FailureWindow(settings.register_max_attempts, signup_window)
        self._ip_signups = FailureWindow(settings.register_ip_max_attempts, signup_window)
        self._reset_requests = FailureWindow(settings.reset_max_requests, reset_window)
        self._ip_reset_requests = FailureWindow(settings.reset_ip_max_requests, reset_window)
        self._cache: OrderedDict[bytes, tuple[Session, float]] = OrderedDict()
        self._cache_max = 50_000
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Finish queued mail, then stop the hashing threads."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        for task in self._tasks:
            task.cancel()
        await self.passwords.close()

    # -- accounts ---------------------------------------------------------------------------

    async def register(
        self,
        email: str,
        password: str,
        display_name: str,
        role: Role = "viewer",
        *,
        client_ip: str | None = None,
    ) -> User:
        """Create an account. With `client_ip` (a sign-up over HTTP, not the operator's CLI)
        the attempt is throttled per e-mail and per address before the password is hashed."""
        email, display_name = normalise_email(email), normalise_display_name(display_name)
        problems = {}
        if (p := check_email(email)) is not None:
            problems["email"] = p
        if (p := password_problem(password, email=email, min_length=self.min_password)) is not None:
            problems["password"] = p
        if (p := check_display_name(display_name)) is not None:
            problems["display_name"] = p
        if problems:
            raise InvalidInput(problems)
        if client_ip is not None:
            # Counted before hashing: Argon2 runs on a few threads that every login shares.
            wait = admit((self._signups, email.lower()), (self._ip_signups, client_ip))
            if wait > 0:
                raise Throttled(wait)
        async with self._signup_hashing:
            password_hash = await self.passwords.hash(password)
        try:
            user = await self._users.create(
                email, display_name, name_key(display_name), password_hash, role
            )
        except UniqueViolation as exc:
            if exc.constraint == "users_name_key":
                raise DisplayNameTaken(display_name) from None
            raise EmailTaken(email) from None
        await self._audit.record("user.register", "user", user.id, actor_id=user.id)
        return user

    async def fill_name_keys(self, batch: int = 1000) -> tuple[int, int]:
        """Give the accounts made before display names were unique (or by an older node)
        their name key. Of accounts that share a name, the oldest gets the key; the others
        keep their name, without a key. Safe to run on several nodes at once.

        Returns (accounts given a key now, accounts left sharing an older account's name).
        """
        after, filled, kept = 0, 0, 0
        while found := await self._users.without_name_key(after, batch):
            done = await self._users.set_name_keys([(i, name_key(n)) for i, n in found])
            filled, kept = filled + done, kept + len(found) - done
            after = found[-1][0]
        return filled, kept

    @property
    def min_password(self) -> int:
        return self._settings.min_password_length

    async def login(
        self, email: str, password: str, *, client_ip: str, user_agent: str
    ) -> LoginResult:
        email = normalise_email(email)
        account_key = email.lower()
        wait = max(
            self._account_failures.retry_after_s(account_key),
            self._ip_failures.retry_after_s(client_ip),
        )
        if wait > 0:
            raise Throttled(wait)
        creds = await self._users.credentials(email)
        ok = await self.passwords.verify(creds.password_hash if creds else None, password)
        if not ok or creds is None:
            self._account_failures.fail(account_key)
            self._ip_failures.fail(client_ip)
            if creds is not None:
                await self._audit.record(
                    "user.login_failed", "user", creds.user.id, client_ip=client_ip
                )
            raise BadCredentials()
        self._account_failures.clear(account_key)
        await refuse_suspended(self._suspensions, creds.user.id)
        if self.passwords.needs_rehash(creds.password_hash):
            creds = replace(creds, password_hash=await self.passwords.hash(password))
            await self._users.set_password(creds.user.id, creds.password_hash)
        if creds.two_factor:
            raise SecondFactorRequired(creds.user.id, creds.password_hash)
        return await self.start_session(creds.user, user_agent)

    async def start_session(self, user: User, user_agent: str) -> LoginResult:
        """A new session for a user whose credentials were already checked."""
        token = new_secret(SESSION_PREFIX)
        token_hash = hash_secret(token)
        ttl = self._settings.session_ttl_s
        await self._sessions.create(user.id, token_hash, ttl, user_agent)
        expires = datetime.now(UTC) + timedelta(seconds=ttl)
        return LoginResult(token, token_hash, user, expires)

    async def authenticate(self, token: str) -> Session | None:
        """The live session for a token, cached for at most `session_cache_s`."""
        if not token.startswith(SESSION_PREFIX) or len(token) > 128:
            return None
        token_hash = hash_secret(token)
        now = time.monotonic()
        cached = self._cache.get(token_hash)
        if cached is not None and cached[1] > now:
            return cached[0]
        session = await self._sessions.active(token_hash)
        if session is None:
            self._cache.pop(token_hash, None)
            return None
        if datetime.now(UTC) - session.last_seen_at > _TOUCH_EVERY:
            await self._sessions.touch(session.id)
        if self._settings.session_cache_s > 0:
            self._cache[token_hash] = (session, now + self._settings.session_cache_s)
            self._cache.move_to_end(token_hash)
            if len(self._cache) > self._cache_max:
                self._cache.popitem(last=False)
        return session

    async def sessions_of(self, user: User) -> list[SessionInfo]:
        return await self._sessions.of_user(user.id)

    async def logout(self, session: Session) -> None:
        await self._sessions.revoke(session.token_hash)
        self._cache.pop(session.token_hash, None)

    async def end_session(self, user: User, session_id: int) -> bool:
        """End one of the user's own sessions by id; False when it is not theirs or over."""
        revoked = await self._sessions.revoke_id(user.id, session_id)
        if revoked is None:
            return False
        self._cache.pop(revoked, None)
        await self._audit.record("user.session_ended", "user", user.id, actor_id=user.id)
        return True

    async def log_out_everywhere(self, user: User) -> None:
        """End every session of the user, the one asking included."""
        for revoked in await self._sessions.revoke_all(user.id):
            self._cache.pop(revoked, None)
        await self._audit.record("user.logged_out_everywhere", "user", user.id, actor_id=user.id)

    async def change_password(self, session: Session, current: str, new: str) -> None:
        """Set a new password and end every other session of the user."""
        user = session.user
        if not await self.passwords.verify(await self._users.password_hash(user.id), current):
            raise BadCredentials()
        problem = password_problem(new, email=user.email, min_length=self.min_password)
        if problem is not None:
            raise InvalidInput({"new_password": problem})
        await self._users.set_password(user.id, await self.passwords.hash(new))
        for revoked in await self._sessions.revoke_all(user.id, keep=session.token_hash):
            self._cache.pop(revoked, None)
        await self._audit.record("user.password_changed", "user", user.id, actor_id=user.id)

    # -- password reset ---------------------------------------------------------------------

    def request_reset(self, email: str, *, client_ip: str) -> None:
        """Start a reset in the background: the caller answers the same for every email.

        Raises Throttled when this e-mail or this address asked too often; the e-mail is
        counted whether or not an account has it, so a refusal reveals nothing either.
        """
        email = normalise_email(email)
        wait = admit((self._reset_requests, email.lower()), (self._ip_reset_requests, client_ip))
        if wait > 0:
            raise Throttled(wait)
        task = asyncio.create_task(self._send_reset(email))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_reset(self, email: str) -> None:
        try:
            user = await self._users.by_email(email)
            if user is None:
                return
            token = new_secret(RESET_PREFIX)
            await self._resets.create(user.id, hash_secret(token), self._settings.reset_token_ttl_s)
            minutes = self._settings.reset_token_ttl_s // 60
            # A page to open, not an API to call. The token rides in the fragment, which
            # browsers never send to a server, so it stays out of access logs and Referers.
            body = (
                f"Someone asked to reset the password of your livecore account at "
                f"{self._public_url}.\n\nChoose a new password here (the link works once, "
                f"for {minutes} minutes):\n\n    {self._public_url}/reset-password#token={token}"
                f"\n\nIf it was not you, ignore this mail: your password stays as it is.\n"
            )
            await self._mailer.send(Mail(user.email, "Reset your livecore password", body))
            await self._audit.record("user.reset_requested", "user", user.id)
        except Exception:
            logger.exception("password reset mail failed")

    async def confirm_reset(self, token: str, new_password: str) -> None:
        if not token.startswith(RESET_PREFIX) or len(token) > 128:
            raise BadCredentials()
        token_hash = hash_secret(token)
        user = await self._resets.pending_user(token_hash)
        if user is None:
            raise BadCredentials()
        problem = password_problem(new_password, email=user.email, min_length=self.min_password)
        if problem is not None:
            raise InvalidInput({"password": problem})
        # consume() re-checks the token inside its transaction: of two racing confirmations
        # exactly one wins.
        if await self._resets.consume(token_hash, await self.passwords.hash(new_password)) is None:
            raise BadCredentials()
        self.forget_user(user.id)
        await self._audit.record("user.password_reset", "user", user.id, actor_id=user.id)

    def forget_user(self, user_id: int) -> None:
        for token_hash in [h for h, (s, _) in self._cache.items() if s.user.id == user_id]:
            del self._cache[token_hash]

    # -- stream keys ------------------------------------------------------------------------

    async def stream_for_key(self, slug: str, key: str) -> Stream | None:
        """The stream `slug` when `key` is its current stream key."""
        if not key.startswith(STREAM_KEY_PREFIX) or len(key) > 128:
            return None
        return await self._streams.for_key(slug, hash_secret(key))

    async def stream_for_publisher(self, slug: str, token: str, secret_key: bytes) -> Stream | None:
        """The stream `slug` when `token` is its stream key or a publish token for it
        (livecore.auth.publish) whose user may still manage it: its owner or an admin."""
        if not is_publish_token(token):
            return await self.stream_for_key(slug, token)
        stream = await self._streams.by_slug(slug)
        if stream is None:
            return None
        grant = verify_publish(secret_key, token, stream.id)
        if grant is None:
            return None
        if grant.user_id != stream.owner_id:
            user = await self._users.get(grant.user_id)
            if user is None or user.role != "admin":
                return None  # an admin who has since been demoted
        return stream


def new_stream_key() -> tuple[str, bytes]:
    """A new stream key and the hash that is stored; the key itself is shown once."""
    key = new_secret(STREAM_KEY_PREFIX)
    return key, hash_secret(key)
