"""What the HLS handlers read: the seams between hls.routes and whatever serves the media
(hls.origin for this node's broadcasts, the tests' fakes). No I/O; imports only hls/.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from livecore.hls.state import MediaState, VariantInfo
from livecore.hls.thumbnails import Thumbnail


class RenditionView(Protocol):
    """What the handlers read from one rendition's packager (`hls.packager.Packager`)."""

    @property
    def directory(self) -> Path: ...

    @property
    def version(self) -> int:
        """Changes whenever the media playlist would."""
        ...

    @property
    def ended(self) -> bool: ...

    @property
    def preload_hint(self) -> tuple[int, int] | None: ...

    @property
    def last_part(self) -> tuple[int, int] | None: ...

    def media_state(self) -> MediaState: ...

    def variant(self, uri: str) -> VariantInfo | None: ...

    def has(self, msn: int, part: int | None = None) -> bool: ...

    def has_init(self, n: int) -> bool: ...

    def has_part(self, msn: int, index: int) -> bool: ...

    def has_segment(self, msn: int) -> bool: ...

    async def wait_for(self, msn: int, part: int | None = None) -> None: ...

    @property
    def ready(self) -> bool:
        """Whether a player can start on it: it lists a complete segment."""
        ...

    async def wait_ready(self) -> None: ...


class HlsDirectory(Protocol):
    """Finds a live (or recently ended) stream's renditions by its public slug."""

    def lookup(self, stream: str) -> Mapping[str, RenditionView] | None:
        """Renditions by name, in master-playlist order ("source" first); None: unknown."""
        ...

    def thumbnail(self, stream: str) -> Thumbnail | None:
        """The latest thumbnail of the stream, if one was made."""
        ...
