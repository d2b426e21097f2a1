"""What a broadcast's start and end set off on this node: the broadcast's row (through
`live.BroadcastLog`), its recording's size once packaging has finished (`RecordingDone`),
listening for ends asked on any node (`ending.LiveEnder`), screening a stream that goes live
(`on_live`) and the stream's `stream_state` event on the bus.

The publishers (sfu/) report a go-live and an end synchronously and never wait: `changed`
only queues and starts tasks, which `events_sent` and `recordings_reported` await at
shutdown. The hub and the HLS origin are read through the protocols below: streams/ imports
neither sfu/ nor hls/ (wiring/media.py passes them in).

While the node drains (livecore.nodestate), a broadcast whose publisher leaves is handed
over: no `offline` event, and it ends only if its publisher has not continued it on another
node within `handover_s`, or as soon as an end is asked for (`ending.Endings` records it). So
are those the node closes as it exits when another node takes publishes: the nodes that
survive it end those their publishers do not continue. One ended on request is never handed
over. A broadcast continued here sends no second `live` event and is not screened again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from livecore.events.bus import EventBus
from livecore.events.types import Event, StreamMedia, StreamState
from livecore.nodestate import NodeState
from livecore.store.broadcasts import MediaInfo
from livecore.streams.ending import LiveEnder
from livecore.streams.live import BroadcastLog, HandoverOver, RecordingDone, StateChange


class _Stats(Protocol):
    def average_bitrate_bps(self) -> int | None: ...


class LiveHub(Protocol):
    """What a broadcast's state needs of its hub (sfu.hub.StreamHub)."""

    @property
    def stream_id(self) -> int: ...

    @property
    def slug(self) -> str: ...

    @property
    def serial(self) -> int: ...

    @property
    def video_codec(self) -> str | None: ...

    @property
    def audio_codec(self) -> str | None: ...

    @property
    def stats(self) -> _Stats: ...


class Recording(Protocol):
    @property
    def size_bytes(self) -> int: ...


H = TypeVar("H", bound=LiveHub)
H_contra = TypeVar("H_contra", bound=LiveHub, contravariant=True)


class Packaging(Protocol[H_contra]):
    """What a broadcast's state needs of its packaging (hls.origin.HlsOrigin)."""

    def directory_of(self, hub: H_contra) -> Path | None:
        """Where the hub's broadcast is recorded; None: it is not packaged here."""
        ...

    def recording_of(self, hub: H_contra) -> Awaitable[Recording] | None:
        """Its recording once packaging has finished; None: it was never packaged here."""
        ...

    def picture(self, stream: str) -> tuple[int | None, int | None]:
        """The source rendition's width and height (None until the packager read them)."""
        ...

    def hand_over(self, hub: H_contra) -> None:
        """The hub's broadcast goes on on another node: its viewers are served from there."""
        ...


class StreamStates(Generic[H]):
    """The publishers' state callback (`changed`) and the tasks it starts."""

    def __init__(
        self,
        bus: EventBus,
        broadcasts: BroadcastLog,
        packaging: Packaging[H],
        ender: LiveEnder,
        data_path: Path,
        *,
        on_live: Callable[[int], None] | None = None,
        node: NodeState | None = None,
        handover_s: float = 0.0,
    ) -> None:
        self._bus = bus
        self._node = node or NodeState()
        self._handover_s = handover_s
        self._waits: set[asyncio.Task[None]] = set()
        self._on_live = on_live  # (stream id): screening of its title; must not wait
        self._broadcasts = broadcasts
        self._packaging = packaging
        self._ender = ender
        self._data_path = data_path
        self._events: set[asyncio.Task[Event]] = set()
        self._reports: set[asyncio.Task[None]] = set()

    def changed(self, hub: H, live: bool) -> None:
        """The hub's broadcast started (`live`) or ended. Never blocks."""
        (self._ender.watch if live else self._ender.unwatch)(hub.stream_id)
        media, recording, path = None, None, ""
        if live and (directory := self._packaging.directory_of(hub)) is not None:
            path = str(directory.relative_to(self._data_path))
        if not live:
            width, height = self._packaging.picture(hub.slug)
            media = MediaInfo(
                video_codec=hub.video_codec or "", audio_codec=hub.audio_codec or "",
                width=width, height=height, bitrate_bps=hub.stats.average_bitrate_bps(),
            )  # fmt: skip
            recording = self._packaging.recording_of(hub)
        follows = recording is not None
        continued = self._node.continuing.pop(hub.stream_id, None) if live else None
        # An end asked for (livecore.streams.ending) is an end, even on a draining node: its
        # publisher must not continue the broadcast elsewhere, and its playlists get ENDLIST.
        requested = not live and self._ender.ended_on_request(hub.stream_id)
        handover = not live and self._node.hands_over and not requested
        self._broadcasts.report(
            StateChange(
                hub.stream_id, live, hub.serial, path, media, follows,
                continues=continued.broadcast_id if continued else None, handover=handover,
                leg=continued.discontinuity if continued and continued.recording_path else 0,
            )
        )  # fmt: skip
        if recording is not None:
            report = asyncio.create_task(self._report_recording(hub.serial, recording))
            self._reports.add(report)
            report.add_done_callback(self._reports.discard)
        if handover:
            self._packaging.hand_over(hub)
            wait = asyncio.create_task(self._hand_over(hub.stream_id, hub.serial))
            self._waits.add(wait)
            wait.add_done_callback(self._waits.discard)
        if continued is not None or handover:
            return  # for viewers the broadcast goes on (from another node)
        if live and self._on_live is not None:
            self._on_live(hub.stream_id)
        shown = None if media is None else StreamMedia(media.video_codec, media.width, media.height)
        self._spawn(
            self._bus.publish(hub.stream_id, StreamState("live" if live else "offline", shown))
        )

    def handed_over_ended(self, stream_id: int) -> None:
        """A handed-over broadcast ended after all: its viewers are told now."""
        self._spawn(self._bus.publish(stream_id, StreamState("offline")))

    async def _hand_over(self, stream_id: int, serial: int) -> None:
        await asyncio.sleep(self._handover_s)
        self._broadcasts.report(HandoverOver(stream_id, serial))

    def _spawn(self, coro: Coroutine[Any, Any, Event]) -> None:
        task = asyncio.create_task(coro)
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def _report_recording(self, serial: int, finished: Awaitable[Recording]) -> None:
        recording = await finished  # size 0 (ended before its first segment): never listed
        self._broadcasts.report(RecordingDone(serial, recording.size_bytes))

    async def events_sent(self) -> None:
        """Wait for the state events published so far (shutdown). Handed-over broadcasts still
        waiting stay open: the nodes that survive this one end them (livecore.cluster)."""
        for wait in self._waits:
            wait.cancel()
        await asyncio.gather(*self._waits, *self._events, return_exceptions=True)

    async def recordings_reported(self) -> None:
        """Wait for the recordings' reports (shutdown, once packaging has finished)."""
        await asyncio.gather(*self._reports, return_exceptions=True)
