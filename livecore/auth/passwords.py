"""Argon2id password hashing, run in worker threads so the event loop never waits on it."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

COMMON_PASSWORDS = frozenset(
    {
        "password", "password1", "password123", "123456789", "1234567890", "12345678910",
        "qwertyuiop", "qwerty123", "iloveyou", "sunshine", "princess", "football",
        "letmein123", "welcome123", "admin12345", "passw0rd", "abc123456", "1q2w3e4r5t",
    }
)  # fmt: skip


class PasswordHashing(Protocol):
    """What accounts need from password hashing (Passwords; a fake in tests)."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str | None, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...

    async def close(self) -> None: ...


class Passwords:
    """Hash and verify passwords off the loop; close() shuts the worker threads down."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, workers: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        # Verified against when an account does not exist, so that an unknown email costs
        # the same time as a wrong password.
        self._dummy_hash = self._hasher.hash("livecore-timing-equaliser")

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        loop = asyncio.get_running_loop()
        return (
            await loop.run_in_executor(
                self._pool, self._verify_sync, password_hash or self._dummy_hash, password
            )
            and password_hash is not None
        )

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    async def close(self) -> None:
        """Stop the threads; joining them blocks, so it happens in another thread."""
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


def password_problem(password: str, *, email: str, min_length: int) -> str | None:
    """Why a new password is too weak, or None when it is acceptable."""
    if len(password) < min_length:
        return f"must be at least {min_length} characters"
    if len(password) > 1024:
        return "must be at most 1024 characters"
    lowered = password.lower()
    if len(set(password)) < 4:
        return "is too repetitive"
    if lowered in COMMON_PASSWORDS:
        return "is too common"
    local = email.split("@", 1)[0].lower()
    if lowered == email.lower() or (len(local) >= 4 and local in lowered):
        return "must not contain your email address"
    return None
