"""Small fakes for Protocol seams (never for PostgreSQL or Redis, which are real)."""

from __future__ import annotations

import asyncio

from livecore.auth.mail import Mail


class CapturingMailSender:
    """Keeps sent mail so a test can read the reset token a user would receive."""

    def __init__(self) -> None:
        self.sent: list[Mail] = []
        self._arrived = asyncio.Event()

    async def send(self, mail: Mail) -> None:
        self.sent.append(mail)
        self._arrived.set()

    async def next_mail(self, timeout_s: float = 5.0) -> Mail:
        async with asyncio.timeout(timeout_s):
            while not self.sent:
                self._arrived.clear()
                await self._arrived.wait()
        return self.sent.pop(0)


class GatedPasswords:
    """Password hashing on a few simulated worker threads, where hashing a new password waits
    until the test opens the gate (verifying is instant once it has a thread).

    Stands in for the Argon2 thread pool when a test needs to hold hashes in flight."""

    def __init__(self, threads: int) -> None:
        self._threads = asyncio.Semaphore(threads)
        self._gate = asyncio.Event()
        self._changed = asyncio.Event()
        self.hashing = 0
        self.most_hashing = 0

    def open(self) -> None:
        self._gate.set()

    def shut(self) -> None:
        self._gate.clear()

    async def hashes_in_flight(self, count: int, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while self.hashing < count:
                self._changed.clear()
                await self._changed.wait()

    async def hash(self, password: str) -> str:
        async with self._threads:
            self.hashing += 1
            self.most_hashing = max(self.most_hashing, self.hashing)
            self._changed.set()
            try:
                await self._gate.wait()
            finally:
                self.hashing -= 1
        return "gated$" + password

    async def verify(self, password_hash: str | None, password: str) -> bool:
        async with self._threads:
            return password_hash == "gated$" + password

    def needs_rehash(self, password_hash: str) -> bool:
        return False

    async def close(self) -> None:
        self.open()
