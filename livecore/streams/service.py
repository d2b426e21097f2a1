"""Stream management rules: who may do what to a stream, and slug/title checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from livecore.auth.service import InvalidInput, new_stream_key
from livecore.store import UniqueViolation
from livecore.store.audit import AuditLog
from livecore.store.streams import Stream, Streams, StreamState, Visibility
from livecore.store.users import User
from livecore.text import has_control, has_visible

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,38}[a-z0-9]")
# Slugs that would shadow pages or routes.
RESERVED_SLUGS = frozenset({"api", "admin", "studio", "watch", "new", "live", "static", "hls"})


class SlugTaken(Exception):
    pass


class NotAllowed(Exception):
    pass


class StreamIsLive(Exception):
    pass


@dataclass(frozen=True, slots=True)
class NewStream:
    stream: Stream
    stream_key: str


def check_slug(slug: str) -> str | None:
    if not SLUG.fullmatch(slug):
        return "must be 3-40 lowercase letters, digits or dashes, not starting or ending with -"
    if slug in RESERVED_SLUGS:
        return "is reserved"
    return None


def check_title(title: str) -> str | None:
    if len(title) > 140:
        return "must be at most 140 characters"
    # The chat's rules (livecore.text): bidi overrides and isolates would reorder the page
    # around the title, and a title of invisible characters only looks like none.
    if has_control(title, newlines=False):
        return "must not contain control characters"
    if title and not has_visible(title):
        return "must contain a visible character (or be empty)"
    return None


# Longer than any title (140) or display name: nothing longer can match.
SEARCH_MAX_LEN = 140


def check_search(text: str) -> str | None:
    if len(text) > SEARCH_MAX_LEN:
        return f"must be at most {SEARCH_MAX_LEN} characters"
    # NUL would fail inside PostgreSQL, and no title or name holds a control character.
    if has_control(text, newlines=False):
        return "must not contain control characters"
    return None


def may_manage(user: User, stream: Stream) -> bool:
    """Only the owner and admins edit a stream, rotate its key or delete it."""
    return user.role == "admin" or stream.owner_id == user.id


class StreamService:
    def __init__(
        self, streams: Streams, audit: AuditLog, on_change: Callable[[], None] | None = None
    ) -> None:
        self._streams = streams
        self._audit = audit
        # Told after every change this service makes (listing caches drop their copies).
        self._on_change = on_change or (lambda: None)

    async def create(self, owner: User, slug: str, title: str, visibility: Visibility) -> NewStream:
        if owner.role not in ("creator", "admin"):
            raise NotAllowed("only creators can create streams")
        problems = {}
        if (p := check_slug(slug)) is not None:
            problems["slug"] = p
        if (p := check_title(title)) is not None:
            problems["title"] = p
        if problems:
            raise InvalidInput(problems)
        key, key_hash = new_stream_key()
        try:
            stream = await self._streams.create(owner.id, slug, title, visibility, key_hash)
        except UniqueViolation:
            raise SlugTaken(slug) from None
        self._on_change()
        await self._audit.record("stream.create", "stream", stream.id, actor_id=owner.id)
        return NewStream(stream, key)

    async def get(self, slug: str) -> Stream | None:
        if not SLUG.fullmatch(slug):
            return None
        return await self._streams.by_slug(slug)

    async def list(
        self, *, state: StreamState | None, owner_id: int | None, search: str | None = None
    ) -> list[Stream]:
        """Streams by state and owner; `search` must have passed `check_search`."""
        return await self._streams.find(state=state, owner_id=owner_id, search=search)

    async def update(
        self, actor: User, stream: Stream, *, title: str | None, visibility: Visibility | None
    ) -> Stream:
        self._check_manager(actor, stream)
        if title is not None and (p := check_title(title)) is not None:
            raise InvalidInput({"title": p})
        updated = await self._streams.update(stream.id, title=title, visibility=visibility)
        if updated is None:
            raise LookupError(stream.slug)
        self._on_change()
        await self._audit.record(
            "stream.update", "stream", stream.id, actor_id=actor.id,
            details={"title": title, "visibility": visibility},
        )  # fmt: skip
        return updated

    async def delete(self, actor: User, stream: Stream) -> None:
        self._check_manager(actor, stream)
        if not await self._streams.delete(stream.id):
            raise StreamIsLive(stream.slug)
        self._on_change()
        await self._audit.record(
            "stream.delete", "stream", stream.id, actor_id=actor.id, details={"slug": stream.slug}
        )

    async def rotate_key(self, actor: User | None, stream: Stream) -> str:
        """Replace the stream key; the old one stops working at once. None: an operator."""
        if actor is not None:
            self._check_manager(actor, stream)
        key, key_hash = new_stream_key()
        await self._streams.rotate_key(stream.id, key_hash)
        await self._audit.record(
            "stream.rotate_key", "stream", stream.id, actor_id=actor.id if actor else None
        )
        return key

    def _check_manager(self, actor: User, stream: Stream) -> None:
        if not may_manage(actor, stream):
            raise NotAllowed("only the stream's owner or an admin may do this")
