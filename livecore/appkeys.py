"""Typed keys for the services the packages' setups put on the application (type-only
imports). A key read by more than one module lives here; one that a single route module both
sets and reads stays private there (docs/architecture.md lists them)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from aiohttp import web

if TYPE_CHECKING:
    from livecore.auth.service import AuthService
    from livecore.auth.twofactor import TwoFactorService
    from livecore.cache import TtlCache
    from livecore.chat.node import Chat
    from livecore.cluster.drain import Drainer
    from livecore.config import Config
    from livecore.events.bus import EventBus
    from livecore.hls.metrics import HlsMetrics
    from livecore.hls.origin import HlsOrigin
    from livecore.nodestate import NodeState
    from livecore.ops.metrics import Metrics
    from livecore.recordings.storage import RecordingStorage
    from livecore.recordings.uploader import BucketUploader
    from livecore.safety.screening import ScreeningQueue
    from livecore.safety.service import ReportService
    from livecore.sfu.hub import HubRegistry
    from livecore.sfu.publisher import Publishers
    from livecore.sfu.viewers import Viewers
    from livecore.store import Database
    from livecore.store.audit import AuditLog
    from livecore.store.streams import Streams, StreamState
    from livecore.store.users import Users
    from livecore.streams.health import IngestProbe
    from livecore.streams.playback import PlaybackPolicy
    from livecore.streams.service import StreamService
    from livecore.tips.payouts import PayoutService
    from livecore.tips.service import TipService
    from livecore.tips.subscription_access import SubscriberAccess
    from livecore.tips.subscriptions import SubscriptionService
    from livecore.tips.webhooks import WebhookHandler

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
# This node's phase (draining after SIGTERM) and the broadcasts it continues (livecore.cluster).
NODE_STATE: Final[web.AppKey[NodeState]] = web.AppKey("node_state")
# Drains this node on SIGTERM (livecore serve).
DRAIN: Final[web.AppKey[Drainer]] = web.AppKey("drain")
PUBLISHERS: Final[web.AppKey[Publishers]] = web.AppKey("publishers")
VIEWERS: Final[web.AppKey[Viewers]] = web.AppKey("viewers")
# Where recordings are kept (recordings/: this node's disk, or a bucket every node reads).
RECORDINGS: Final[web.AppKey[RecordingStorage]] = web.AppKey("recordings")
# With a bucket: what copies this node's recordings into it as segments complete (absent:
# recordings stay on the local disk).
RECORDING_UPLOADS: Final[web.AppKey[BucketUploader]] = web.AppKey("recording_uploads")
# Load balancers whose X-Forwarded-For is believed (parsed from config.trusted_proxies by
# clientip.py, which reads this key: the type is spelled out so neither imports the other).
TRUSTED_PROXIES: Final[web.AppKey[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]]] = (
    web.AppKey("trusted_proxies")
)
# The deployment's signing key (CSRF tokens, playback tokens).
SECRET_KEY: Final[web.AppKey[bytes]] = web.AppKey("secret_key", bytes)

# streams/: the service, the public listings and searches (a listing as sent: ETag and JSON
# body; invalidated by this node's own changes and by broadcasts starting and ending), who
# may watch, and each live stream's ingest figures (answered by wiring/media.py: they live in
# sfu/ and hls/, which streams/ may not import).
STREAMS: Final[web.AppKey[StreamService]] = web.AppKey("streams")
LISTINGS: Final[web.AppKey[TtlCache[StreamState | None, tuple[str, bytes]]]] = web.AppKey(
    "stream_listings"
)
SEARCHES: Final[web.AppKey[TtlCache[tuple[StreamState | None, str], tuple[str, bytes]]]] = (
    web.AppKey("stream_searches")
)
PLAYBACK: Final[web.AppKey[PlaybackPolicy]] = web.AppKey("playback")
INGEST: Final[web.AppKey[IngestProbe]] = web.AppKey("ingest")
# Each live stream's viewer count now, by stream id: the chat's presence answers it.
VIEWER_COUNTS: Final[web.AppKey[Callable[[Sequence[int]], Awaitable[Mapping[int, int]]]]] = (
    web.AppKey("viewer_counts")
)
# chat/: its services on this node (the socket, the moderation API and admin/ read them), and
# the rules a tip's message passes before the room shows it (stream id, text -> text or "").
CHAT: Final[web.AppKey[Chat]] = web.AppKey("chat")
CHAT_SCREEN: Final[web.AppKey[Callable[[int, str], Awaitable[str]]]] = web.AppKey("chat_screen")
# tips/: who a subscription lets in, built before playback and chat, which are built with its
# check; then the money services the routes use.
SUBSCRIBER_ACCESS: Final[web.AppKey[SubscriberAccess]] = web.AppKey("subscriber_access")
TIPS: Final[web.AppKey[TipService]] = web.AppKey("tips")
SUBSCRIPTIONS: Final[web.AppKey[SubscriptionService]] = web.AppKey("subscriptions")
PAYOUTS: Final[web.AppKey[PayoutService]] = web.AppKey("payouts")
WEBHOOKS: Final[web.AppKey[WebhookHandler]] = web.AppKey("stripe_webhooks")
# hls/: its metrics (made with its routes) and this node's origin (made with the live media).
HLS_METRICS: Final[web.AppKey[HlsMetrics]] = web.AppKey("hls_metrics")
HLS_ORIGIN: Final[web.AppKey[HlsOrigin]] = web.AppKey("hls_origin")
# safety/: reports and the review queue (its routes read them), and the screening queue the
# chat's lines, thumbnails and go-lives are offered to (wiring/moderation.py, wiring/media.py).
REPORTS: Final[web.AppKey[ReportService]] = web.AppKey("reports")
SCREENING: Final[web.AppKey[ScreeningQueue]] = web.AppKey("screening")
