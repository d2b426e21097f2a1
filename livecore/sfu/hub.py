"""StreamHub: everything one live stream produces passes through here exactly once.

The publisher is the only writer; the packager, WHEP forwarders, thumbnailer and recorder
read through bounded subscriptions. `publish()` never waits: a slow reader drops units
until the next keyframe, and never stalls the publisher or the other readers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from livecore.sfu.media import MediaUnit

logger = logging.getLogger(__name__)

# A GOP longer than this many units is not cached whole (a publisher that never sends
# keyframes must not grow memory); new readers then wait for the next keyframe.
MAX_GOP_UNITS = 1200


_SERIALS = itertools.count(1)


class HubClosed(Exception):
    pass


class Subscription:
    """One reader's bounded view of a hub."""

    def __init__(self, name: str, maxsize: int, *, keyframes_only: bool = False) -> None:
        self.name = name
        # A reader of keyframes alone (thumbnails) is not woken for the other ~80 units/s.
        self._keyframes_only = keyframes_only
        self.dropped = 0
        self._queue: asyncio.Queue[MediaUnit | None] = asyncio.Queue(maxsize)
        self._need_keyframe = True
        self._closed = False
        self.on_keyframe_needed: Callable[[], None] | None = None

    def offer(self, unit: MediaUnit) -> None:
        if self._closed:
            return
        if self._keyframes_only and not (unit.keyframe and unit.kind == "video"):
            return
        if unit.kind == "video" and self._need_keyframe:
            if not unit.keyframe:
                return  # a decoder cannot start mid-GOP
            self._need_keyframe = False
        try:
            self._queue.put_nowait(unit)
        except asyncio.QueueFull:
            # The slow reader pays, never the publisher or the other readers.
            self.dropped += 1
            self._need_keyframe = True
            if self.on_keyframe_needed is not None:
                self.on_keyframe_needed()

    async def get(self) -> MediaUnit | None:
        """The next unit, or None once the broadcast has ended and the queue is drained."""
        if self._closed and self._queue.empty():
            return None
        return await self._queue.get()

    def end(self) -> None:
        """Mark the end of the broadcast; the reader sees None after the queued units."""
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                self._queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                # Make room for the end marker: the reader is ending anyway.
                self._queue.get_nowait()
                self.dropped += 1

    @property
    def ended(self) -> bool:
        return self._closed


@dataclass
class HubStats:
    units_in: int = 0
    bytes_in: int = 0
    keyframes: int = 0
    last_keyframe_at: float = 0.0
    keyframe_interval_s: float = 0.0
    started_at: float = field(default_factory=time.monotonic)

    def average_bitrate_bps(self) -> int | None:
        """Media bits per second since the broadcast started (audio and video)."""
        elapsed = time.monotonic() - self.started_at
        return round(self.bytes_in * 8 / elapsed) if elapsed > 0 and self.bytes_in else None


class StreamHub:
    """The meeting point of one live stream's publisher and its readers."""

    def __init__(
        self,
        stream_id: int,
        slug: str,
        *,
        queue_size: int = 600,
        kinds: frozenset[str] = frozenset({"video", "audio"}),
        request_keyframe: Callable[[], None] | None = None,
        keyframe_request_interval_s: float = 0.5,
    ) -> None:
        self.stream_id = stream_id
        self.slug = slug
        self.serial = next(_SERIALS)  # tells this broadcast from the stream's others
        self.stats = HubStats()
        # The kinds of media the publisher's offer announced (readers need not wait for others).
        self.kinds = kinds
        self.video_codec: str | None = None
        self.audio_codec: str | None = None
        self._queue_size = queue_size
        self._subs: set[Subscription] = set()
        self._gop: deque[MediaUnit] = deque(maxlen=MAX_GOP_UNITS)
        self._gop_complete = False
        self._request_keyframe = request_keyframe
        self._keyframe_interval_s = keyframe_request_interval_s
        self._last_keyframe_request = 0.0
        self._ended = asyncio.Event()
        self._last_pts: dict[str, int] = {"video": -1, "audio": -1}

    # -- the publisher's side ---------------------------------------------------------------

    def publish(self, unit: MediaUnit) -> None:
        # Deliberately not async: publishing can never wait on a reader.
        if self._ended.is_set():
            return
        stats = self.stats
        self._last_pts[unit.kind] = unit.pts
        stats.units_in += 1
        stats.bytes_in += len(unit.data)
        if unit.kind == "video":
            self.video_codec = unit.codec
            if unit.keyframe:
                now = time.monotonic()
                if stats.last_keyframe_at:
                    stats.keyframe_interval_s = now - stats.last_keyframe_at
                stats.last_keyframe_at = now
                stats.keyframes += 1
                self._gop.clear()
                self._gop_complete = True
        else:
            self.audio_codec = unit.codec
        if len(self._gop) == MAX_GOP_UNITS:
            self._gop_complete = False  # the oldest unit (the keyframe) is about to fall out
        self._gop.append(unit)
        for sub in self._subs:
            sub.offer(unit)

    def last_pts(self, kind: str) -> int:
        """The newest pts published for `kind`, -1 before the first."""
        return self._last_pts[kind]

    def set_keyframe_requester(self, request: Callable[[], None] | None) -> None:
        """Who to ask for a keyframe: the current publisher (replaced on takeover)."""
        self._request_keyframe = request

    def end(self) -> None:
        """The broadcast is over: every reader drains its queue and then sees None."""
        if self._ended.is_set():
            return
        self._ended.set()
        for sub in self._subs:
            sub.end()
        self._gop.clear()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def wait_ended(self) -> None:
        await self._ended.wait()

    # -- the readers' side ------------------------------------------------------------------

    def subscribe(
        self, name: str, *, replay_gop: bool = True, keyframes_only: bool = False
    ) -> Subscription:
        """A new reader; it starts at once from the cached GOP when there is one.

        A real-time reader (a WebRTC viewer) passes replay_gop=False: it starts at the next
        keyframe, which is requested now, instead of seconds behind at the cached one.
        """
        sub = Subscription(name, self._queue_size, keyframes_only=keyframes_only)
        sub.on_keyframe_needed = self.request_keyframe
        if self._ended.is_set():
            sub.end()
            return sub
        if not replay_gop:
            self.request_keyframe()
        elif self._gop_complete:
            for unit in self._gop:
                sub.offer(unit)
        else:
            self.request_keyframe()
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def reader_count(self) -> int:
        return len(self._subs)

    def request_keyframe(self) -> None:
        """Merge keyframe requests from every reader into at most one PLI per interval."""
        now = time.monotonic()
        if now - self._last_keyframe_request < self._keyframe_interval_s:
            return
        self._last_keyframe_request = now
        if self._request_keyframe is not None:
            self._request_keyframe()


class HubRegistry:
    """Owns every live StreamHub of this process, one per stream."""

    def __init__(self, *, queue_size: int = 600) -> None:
        self._hubs: dict[int, StreamHub] = {}
        self._queue_size = queue_size
        self._watchers: list[Callable[[StreamHub], object]] = []

    def open(
        self, stream_id: int, slug: str, kinds: frozenset[str] = frozenset({"video", "audio"})
    ) -> StreamHub:
        """The stream's live hub, created when the broadcast starts."""
        hub = self._hubs.get(stream_id)
        if hub is None or hub.ended:
            hub = StreamHub(stream_id, slug, queue_size=self._queue_size, kinds=kinds)
            self._hubs[stream_id] = hub
            for watcher in self._watchers:
                watcher(hub)
        return hub

    def on_open(self, watcher: Callable[[StreamHub], object]) -> None:
        """Call `watcher` with every new hub (packager, thumbnailer, recorder attach here)."""
        self._watchers.append(watcher)

    def get(self, stream_id: int) -> StreamHub | None:
        hub = self._hubs.get(stream_id)
        return hub if hub is not None and not hub.ended else None

    def by_slug(self, slug: str) -> StreamHub | None:
        for hub in self._hubs.values():
            if hub.slug == slug and not hub.ended:
                return hub
        return None

    def close(self, stream_id: int) -> None:
        hub = self._hubs.pop(stream_id, None)
        if hub is not None:
            hub.end()

    def live(self) -> list[StreamHub]:
        return [h for h in self._hubs.values() if not h.ended]

    def close_all(self) -> None:
        for stream_id in list(self._hubs):
            self.close(stream_id)
