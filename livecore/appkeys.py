"""Typed keys for the services `app.py` puts on the application (type-only imports)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Final

from aiohttp import web

if TYPE_CHECKING:
    from livecore.auth.service import AuthService
    from livecore.auth.twofactor import TwoFactorService
    from livecore.config import Config
    from livecore.events.bus import EventBus
    from livecore.ops.metrics import Metrics
    from livecore.recordings.storage import RecordingStorage
    from livecore.sfu.hub import HubRegistry
    from livecore.sfu.publisher import Publishers
    from livecore.sfu.viewers import Viewers
    from livecore.store import Database
    from livecore.store.audit import AuditLog
    from livecore.store.streams import Streams
    from livecore.store.users import Users

CONFIG: Final[web.AppKey[Config]] = web.AppKey("config")
DB: Final[web.AppKey[Database]] = web.AppKey("db")
AUTH: Final[web.AppKey[AuthService]] = web.AppKey("auth")
# The repositories several route modules read (accounts, streams' rows, the audit log); the
# account service keeps its own and hands out none.
USERS: Final[web.AppKey[Users]] = web.AppKey("users")
STREAM_RECORDS: Final[web.AppKey[Streams]] = web.AppKey("stream_records")
AUDIT: Final[web.AppKey[AuditLog]] = web.AppKey("audit")
TWO_FACTOR: Final[web.AppKey[TwoFactorService]] = web.AppKey("two_factor")
METRICS: Final[web.AppKey[Metrics]] = web.AppKey("metrics")
BUS: Final[web.AppKey[EventBus]] = web.AppKey("bus")
HUBS: Final[web.AppKey[HubRegistry]] = web.AppKey("hubs")
PUBLISHERS: Final[web.AppKey[Publishers]] = web.AppKey("publishers")
VIEWERS: Final[web.AppKey[Viewers]] = web.AppKey("viewers")
# Where this node's recordings are kept (recordings/: the local disk).
RECORDINGS: Final[web.AppKey[RecordingStorage]] = web.AppKey("recordings")
# Load balancers whose X-Forwarded-For is believed (parsed from config.trusted_proxies by
# clientip.py, which reads this key: the type is spelled out so neither imports the other).
TRUSTED_PROXIES: Final[web.AppKey[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]]] = (
    web.AppKey("trusted_proxies")
)
# The deployment's signing key (CSRF tokens, playback tokens).
SECRET_KEY: Final[web.AppKey[bytes]] = web.AppKey("secret_key", bytes)
