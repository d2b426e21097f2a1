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
