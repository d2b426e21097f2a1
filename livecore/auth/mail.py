"""Outgoing mail: a protocol with a log sender (embedded default) and an SMTP sender."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    body: str


class MailSender(Protocol):
    async def send(self, mail: Mail) -> None: ...


class LogMailSender:
    """Writes mail to the log: for one-node setups with no mail server."""

    async def send(self, mail: Mail) -> None:
        logger.warning("mail (no SMTP configured) to=%s subject=%r\n%s", mail.to, mail.subject,
                       mail.body)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    starttls: bool
    username: str
    password: str
    sender: str
    timeout_s: float = 15.0


class SmtpMailSender:
    """Sends through an SMTP relay; smtplib blocks, so each send runs in a thread."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    async def send(self, mail: Mail) -> None:
        await asyncio.to_thread(self._send_sync, mail)

    def _send_sync(self, mail: Mail) -> None:
        s = self._settings
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = s.sender, mail.to, mail.subject
        msg.set_content(mail.body)
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
            if s.starttls:
                smtp.starttls()
            if s.username:
                smtp.login(s.username, s.password)
            smtp.send_message(msg)
