"""Reports: filing them, the review queue with each target's context, the actions taken
from it, and the flags the screening hook raises. Plain asyncio over the store.

Every action closes every open report on its target, is written to the audit log, and leaves
each reporter a notification with the outcome (one transaction for the last two steps).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from livecore.auth.throttle import FailureWindow, admit
from livecore.safety.screening import Flag, Subject
from livecore.store import UniqueViolation
from livecore.store.audit import AuditLog
from livecore.store.broadcasts import Broadcasts
from livecore.store.reports import QueueFilter, Report, Reports, Target
from livecore.store.users import User

logger = logging.getLogger(__name__)

CATEGORIES: Final = (
    "spam", "harassment_or_hate", "violence", "sexual_content", "minor_safety", "illegal",
    "copyright", "self_harm", "other",
)  # fmt: skip
KINDS: Final = ("stream", "user", "recording", "line")
ACTIONS: Final = (
    "dismiss", "delete_line", "timeout", "ban", "take_down_recording", "end_broadcast",
    "suspend_account",
)  # fmt: skip
# Which targets each action applies to.
_APPLIES: Final[Mapping[str, tuple[str, ...]]] = {
    "dismiss": KINDS,
    "delete_line": ("line",),
    "timeout": ("line", "stream", "user"),
    "ban": ("line", "stream", "user"),
    "take_down_recording": ("recording",),
    "end_broadcast": ("stream",),
    "suspend_account": KINDS,  # the account the target is about
}


def applicable(kind: str) -> list[str]:
    """The actions that fit a report on this kind of target, in the queue's order. A stream's
    report is about its owner, whom no room times out or bans: those are left out for it."""
    room = ("timeout", "ban") if kind == "stream" else ()
    return [a for a in ACTIONS if kind in _APPLIES[a] and a not in room]


# The audit log's names for report targets (a recording is a broadcast there).
_AUDIT_TARGET: Final[Mapping[str, str]] = {
    "stream": "stream", "user": "user", "recording": "broadcast", "line": "chat_line",
}  # fmt: skip


class UnknownTarget(LookupError):
    """The report names a stream, user, recording or line that does not exist."""


class AlreadyReported(Exception):
    """The reporter has an open report on this target."""


class Throttled(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s


class NotApplicable(ValueError):
    """The action does not fit the report (its target, or a field it needs)."""


class RoomModeration(Protocol):
    """The chat's moderation operations, as wiring/moderation.py hands them over (audited by
    the chat)."""

    async def delete_line(self, stream_id: int, line_id: int, actor: User) -> None: ...

    async def timeout(
        self, stream_id: int, user_id: int, seconds: int, actor: User, reason: str
    ) -> None: ...

    async def ban(self, stream_id: int, user_id: int, actor: User, reason: str) -> None: ...


class ActionFailed(Exception):
    """The operation behind an action could not be carried out now (try again)."""


class BroadcastEnder(Protocol):
    """Ends a stream's live broadcast now, as its own end route does (audited there).
    Raises NotApplicable (not live, a reason it refuses) or ActionFailed."""

    async def end(self, stream_id: int, actor: User, reason: str) -> None: ...


class AccountSuspender(Protocol):
    """Suspends an account as an admin's suspension does (audited there); `seconds` None:
    until lifted. Raises NotApplicable (a reason it refuses, oneself) or LookupError."""

    async def suspend(
        self, user_id: int, actor: User, reason: str, seconds: int | None
    ) -> None: ...


# Removes a taken-down recording's files from this node (relative path): safety/setup.py.
RemoveRecording = Callable[[str], Awaitable[None]]
ViewerCounts = Callable[[Sequence[int]], Awaitable[Mapping[int, int]]]


@dataclass(frozen=True, slots=True)
class ActionRequest:
    action: str
    reason: str = ""
    seconds: int | None = None  # timeouts
    stream_id: int | None = None  # the room, when the target is a user


def line_target(stream_id: int, line_id: int) -> str:
    return f"{stream_id}:{line_id}"


def split_line_target(target_id: str) -> tuple[int, int]:
    stream_id, line_id = target_id.split(":", 1)
    return int(stream_id), int(line_id)


class ReportService:
    def __init__(
        self, reports: Reports, broadcasts: Broadcasts, audit: AuditLog,
        moderation: RoomModeration, remove_recording: RemoveRecording,
        viewer_counts: ViewerCounts, ender: BroadcastEnder, suspender: AccountSuspender,
        *, limit: int, window_s: float,
    ) -> None:  # fmt: skip
        self._ender = ender
        self._suspender = suspender
        self.store = reports
        self._broadcasts = broadcasts
        self._audit = audit
        self._moderation = moderation
        self._remove_recording = remove_recording
        self._viewer_counts = viewer_counts
        self._window = FailureWindow(limit, window_s)

    async def target(self, kind: str, stream_id: int | None, item_id: int | None) -> Target:
        """Find what a report is about; raises UnknownTarget."""
        if kind == "stream" and stream_id is not None:
            stream = await self.store.stream(stream_id)
            if stream is not None:
                return Target(stream.id, stream.owner_id)
        elif kind == "user" and item_id is not None:
            if await self.store.user_exists(item_id):
                return Target(None, item_id)
        elif kind == "recording" and item_id is not None:
            owner = await self.store.recording_stream(item_id)
            stream = await self.store.stream(owner) if owner is not None else None
            if stream is not None:
                return Target(stream.id, stream.owner_id)
        elif kind == "line" and stream_id is not None and item_id is not None:
            line = await self.store.line(stream_id, item_id)
            if line is not None and not line.deleted:
                return Target(stream_id, line.user_id)
        raise UnknownTarget(kind)

    async def file(
        self, reporter: User, kind: str, target_id: str, target: Target, category: str, note: str
    ) -> Report:
        """File a report; raises Throttled or AlreadyReported."""
        wait = admit((self._window, str(reporter.id)))
        if wait > 0:
            raise Throttled(wait)
        try:
            return await self.store.create(reporter.id, kind, target_id, target, category, note)
        except UniqueViolation:
            raise AlreadyReported from None

    async def flag(self, subject: Subject, flag: Flag) -> None:
        """File the screening hook's flag as a report without a reporter."""
        if subject.kind == "display_name" and subject.user_id is not None:
            kind, target_id, target = "user", str(subject.user_id), Target(None, subject.user_id)
        elif subject.kind == "chat_line" and subject.stream_id and subject.line_id:
            kind, target_id = "line", line_target(subject.stream_id, subject.line_id)
            target = Target(subject.stream_id, subject.user_id)
        elif subject.stream_id is not None:
            kind, target_id = "stream", str(subject.stream_id)
            target = Target(subject.stream_id, subject.user_id)
        else:
            return
        if await self.store.has_open_flag(kind, target_id):
            return  # one flag waiting on a target is enough for a person to look
        await self.store.create(None, kind, target_id, target, flag.category, flag.reason,
                                score=flag.score)  # fmt: skip

    async def context(self, report: Report) -> dict[str, Any]:
        """What an admin needs to decide: the target as it is, and the account's history."""
        out: dict[str, Any] = {}
        facts = await self.store.stream(report.stream_id) if report.stream_id else None
        if facts is not None:
            live = facts.state == "live"
            counts = await self._viewer_counts([facts.id]) if live else {}
            out["stream"] = {
                "id": facts.id, "slug": facts.slug, "title": facts.title, "state": facts.state,
                "thumbnail_url": f"/hls/{facts.slug}/thumb.jpg" if live else None,
                "viewers": counts.get(facts.id, 0),
            }  # fmt: skip
        if report.target_kind == "stream" and facts is not None:
            out["recent_chat"] = [_line(x) for x in await self.store.recent_lines(facts.id, 20)]
        elif report.target_kind == "line":
            stream_id, line_id = split_line_target(report.target_id)
            around = await self.store.lines_around(stream_id, line_id, 5)
            out["line"] = next((_line(x) for x in around if x.id == line_id), None)
            out["neighbours"] = [_line(x) for x in around if x.id != line_id]
        if report.subject_id is not None:
            prior = await self.store.about_subject(report.subject_id, except_id=report.id)
            out["prior_reports"] = [
                {"id": p.id, "target_kind": p.target_kind, "category": p.category,
                 "state": p.state, "outcome": p.outcome, "created_at": p.created_at.isoformat()}
                for p in prior
            ]  # fmt: skip
            out["actions_against_user"] = await self._audit.actions_for("user", report.subject_id)
        # Who wrote each line and whom the report is about, by name (JSON keys are strings).
        lines = [*out.get("recent_chat", []), *out.get("neighbours", [])]
        if out.get("line"):
            lines.append(out["line"])
        ids = {x["user_id"] for x in lines if x["user_id"] is not None}
        if report.subject_id is not None:
            ids.add(report.subject_id)
        names = await self.store.display_names(sorted(ids)) if ids else {}
        out["names"] = {str(k): v for k, v in names.items()}
        return out

    async def queue(self, f: QueueFilter) -> list[Report]:
        return await self.store.queue(f)

    async def act(self, report: Report, request: ActionRequest, actor: User) -> list[Report]:
        """Carry out an action on a report's target; returns every report it closed.
        Raises NotApplicable (the action does not fit) or UnknownTarget (the target is gone)."""
        if report.state != "open":
            raise NotApplicable("this report is closed already")
        if report.target_kind not in _APPLIES[request.action]:
            raise NotApplicable(f"{request.action} does not apply to a {report.target_kind}")
        kind = report.target_kind
        if request.action == "delete_line":
            stream_id, line_id = split_line_target(report.target_id)
            await self._moderation.delete_line(stream_id, line_id, actor)
        elif request.action in ("timeout", "ban"):
            await self._room_action(report, request, actor)
        elif request.action == "take_down_recording":
            await self._take_down(report, actor)
        elif request.action == "end_broadcast":
            reason = request.reason or "ended after a report to the platform"
            await self._ender.end(int(report.target_id), actor, reason)
        elif request.action == "suspend_account":
            if report.subject_id is None:
                raise NotApplicable("the report names no account to suspend")
            reason = request.reason or "suspended after a report to the platform"
            await self._suspender.suspend(report.subject_id, actor, reason, request.seconds)
        state = "dismissed" if request.action == "dismiss" else "actioned"
        closed = await self.store.close_target(
            kind, report.target_id, state=state, outcome=request.action, by=actor.id
        )
        await self._audit.record(
            f"report.{request.action}", _AUDIT_TARGET[kind], report.target_id, actor_id=actor.id,
            details={"report_id": report.id, "closed": len(closed), "reason": request.reason,
                     "stream_id": report.stream_id, "user_id": report.subject_id},
        )  # fmt: skip
        return closed

    async def _room_action(self, report: Report, request: ActionRequest, actor: User) -> None:
        room = report.stream_id if report.target_kind != "user" else request.stream_id
        user_id = report.subject_id
        if room is None:
            raise NotApplicable("say which stream's room (stream)")
        if user_id is None:
            raise NotApplicable("the report names no account to act on")
        stream = await self.store.stream(room)
        if stream is None:
            raise UnknownTarget("stream")
        if user_id == stream.owner_id:
            raise NotApplicable("the stream's owner cannot be timed out or banned in its room")
        if request.action == "timeout":
            if request.seconds is None:
                raise NotApplicable("a timeout needs seconds")
            await self._moderation.timeout(room, user_id, request.seconds, actor, request.reason)
        else:
            await self._moderation.ban(room, user_id, actor, request.reason)

    async def _take_down(self, report: Report, actor: User) -> None:
        broadcast_id = int(report.target_id)
        assert report.stream_id is not None
        path = await self._broadcasts.delete_recording(report.stream_id, broadcast_id)
        if path is None:
            raise UnknownTarget("recording")
        await self._remove_recording(path)
        await self._audit.record(
            "recording.delete", "broadcast", broadcast_id, actor_id=actor.id,
            details={"stream_id": report.stream_id, "report_id": report.id},
        )  # fmt: skip


def _line(line: Any) -> dict[str, Any]:
    return {"id": line.id, "user_id": line.user_id, "text": line.text, "deleted": line.deleted}
