"""The screening hook: each new thumbnail of a live stream, each chat line, stream titles and
display names go to a `Screener`, which may flag them into the review queue.

Screening runs off the hot path: `ScreeningQueue.offer` never waits. Items wait in a bounded
queue for one worker task; when the queue is full a new item is dropped and counted
(`livecore_safety_screening_dropped_total`), so a slow classifier costs screening coverage,
never chat latency.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter

logger = logging.getLogger(__name__)

SubjectKind = Literal["title", "display_name", "chat_line", "thumbnail"]


@dataclass(frozen=True, slots=True)
class Subject:
    """One thing to screen, and where it belongs."""

    kind: SubjectKind
    stream_id: int | None = None  # titles, lines, thumbnails
    user_id: int | None = None  # whose it is (the author, the named account, the owner)
    text: str = ""  # titles, display names and chat lines
    line_id: int | None = None  # chat lines: the event id in the stream's room
    jpeg: bytes = b""  # thumbnails


@dataclass(frozen=True, slots=True)
class Flag:
    """A screener's verdict that a subject needs a person to look at it."""

    category: str  # one of the report categories (service.CATEGORIES)
    score: float  # 0..1: how sure the screener is
    reason: str


class Screener(Protocol):
    """Decides whether a subject goes to the review queue. May take its time (a classifier
    service over the network): it runs on the screening worker, never on a request."""

    async def screen(self, subject: Subject) -> Flag | None: ...


class TermMatcher(Protocol):
    """The chat's banned-terms matcher, as wiring/moderation.py hands it over."""

    def find(self, text: str) -> str | None: ...


class BannedTermsScreener:
    """Flags titles, display names and chat lines holding a platform-wide banned term (the
    same matching as rooms' banned terms: case, accents, look-alikes and spacing folded)."""

    def __init__(self, matcher: TermMatcher) -> None:
        self._matcher = matcher

    async def screen(self, subject: Subject) -> Flag | None:
        if subject.kind == "thumbnail" or not subject.text:
            return None  # pictures need a classifier
        term = self._matcher.find(subject.text)
        if term is None:
            return None
        what = subject.kind.replace("_", " ")
        return Flag("other", 1.0, f"{what} contains the banned term {term!r}")


class NoScreener:
    async def screen(self, subject: Subject) -> Flag | None:
        return None


FileFlag = Callable[[Subject, Flag], Awaitable[None]]
# A stream's title and its owner's display name, read when the stream goes live.
DescribeStream = Callable[[int], Awaitable[list[Subject]]]


class ScreeningQueue:
    """A bounded queue in front of one screening worker; `run()` is owned by safety/setup.py."""

    def __init__(
        self, screener: Screener, file_flag: FileFlag, describe: DescribeStream, maxsize: int,
        registry: CollectorRegistry,
    ) -> None:  # fmt: skip
        self._screener = screener
        self._file = file_flag
        self._describe = describe
        # A stream id stands for "read this stream's title and owner's name, then screen them".
        self._queue: asyncio.Queue[Subject | int] = asyncio.Queue(maxsize)
        self.dropped = 0
        self._dropped = Counter(
            "livecore_safety_screening_dropped_total",
            "Items not screened because the screening queue was full",
            registry=registry,
        )
        self._screened = Counter(
            "livecore_safety_screened_total",
            "Items the screener looked at, by kind",
            ["kind"],
            registry=registry,
        )
        self._flagged = Counter(
            "livecore_safety_screening_flags_total",
            "Items the screener flagged into the review queue",
            registry=registry,
        )

    def offer_stream(self, stream_id: int) -> bool:
        """Queue a stream's title and its owner's display name (it went live)."""
        return self.offer(stream_id)

    def offer(self, subject: Subject | int) -> bool:
        """Queue a subject for screening; never waits. False when it was dropped."""
        try:
            self._queue.put_nowait(subject)
        except asyncio.QueueFull:
            # Screening is best effort; the chat line or thumbnail goes on regardless.
            self.dropped += 1
            self._dropped.inc()
            return False
        return True

    async def run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                subjects = await self._describe(item) if isinstance(item, int) else [item]
                for subject in subjects:
                    await self._screen(subject)
            except Exception:
                stream = item if isinstance(item, int) else item.stream_id
                logger.exception("stream %s: screening failed", stream)
            finally:
                self._queue.task_done()

    async def _screen(self, subject: Subject) -> None:
        flag = await self._screener.screen(subject)
        self._screened.labels(subject.kind).inc()
        if flag is not None:
            await self._file(subject, flag)
            self._flagged.inc()

    async def join(self) -> None:
        """Wait until every queued subject has been screened (tests, shutdown)."""
        await self._queue.join()
