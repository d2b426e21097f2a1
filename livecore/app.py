"""The aiohttp application factory: wires every package and owns their lifecycles."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from livecore.admin import console_routes as admin_console_routes
from livecore.admin import routes as admin_routes
from livecore.admin.accounts import Accounts, SelfSuspension, UnknownUser
from livecore.appkeys import (
    AUDIT,
    AUTH,
    BUS,
    CONFIG,
    DB,
    HUBS,
    METRICS,
    PUBLISHERS,
    RECORDINGS,
    SECRET_KEY,
    STREAM_RECORDS,
    TRUSTED_PROXIES,
    USERS,
    VIEWERS,
)
from livecore.auth import routes as auth_routes
from livecore.auth import twofactor_routes
from livecore.auth.mail import LogMailSender, MailSender, SmtpMailSender, SmtpSettings
from livecore.auth.origins import OriginPolicy
from livecore.auth.service import AuthService
from livecore.chat import context as chat_context
from livecore.chat import routes as chat_routes
from livecore.chat.heartbeat import Heartbeat
from livecore.chat.limits import chat_limits
from livecore.chat.metrics import ChatMetrics
from livecore.chat.presence import Presence
from livecore.chat.room import Rooms, RoomTuning
from livecore.chat.service import ChatService
from livecore.chat.text import BannedTerms
from livecore.clientip import parse_networks
from livecore.cluster import setup as cluster_setup
from livecore.config import Config
from livecore.deadlines import body_deadline
from livecore.errors import Forbidden, json_errors
from livecore.events.bus import BusUnavailable, LocalBus
from livecore.events.metrics import BusMetrics
from livecore.events.redis_bus import RedisBus
from livecore.events.types import Event, StreamMedia, StreamState
from livecore.hls import routes as hls_routes
from livecore.hls.metrics import HlsMetrics
from livecore.hls.origin import FinishedRecording, HlsOrigin
from livecore.hls.packaging import PackagingProcesses
from livecore.hls.thumbnails import Thumbnail
from livecore.hls.views import RenditionView
from livecore.ops import routes as ops_routes
from livecore.ops.metrics import Metrics
from livecore.ops.runtime import RuntimeProbe
from livecore.recordings import routes as recording_routes
from livecore.recordings.layout import ROOT as RECORDINGS_ROOT
from livecore.recordings.recovery import finish_interrupted
from livecore.recordings.retention import Retention
from livecore.recordings.storage import LocalDisk
from livecore.rights import routes as rights_routes
from livecore.safety import routes as safety_routes
from livecore.safety.screening import (
    BannedTermsScreener,
    NoScreener,
    Screener,
    ScreeningQueue,
    Subject,
)
from livecore.safety.service import ActionFailed, NotApplicable, ReportService
from livecore.sfu.hub import HubRegistry, StreamHub
from livecore.sfu.metrics import SfuMetrics
from livecore.sfu.passthrough import (
    enlarge_receive_buffers,
    install_passthrough,
    restrict_host_addresses,
)
from livecore.sfu.publisher import Publishers
from livecore.sfu.viewers import Viewers
from livecore.sfu.vp8 import source_transcoders
from livecore.signaling import routes as signaling_routes
from livecore.store import Database, apply_migrations
from livecore.store.audit import AuditLog
from livecore.store.broadcasts import Broadcasts, MediaInfo
from livecore.store.chat import ChatStore
from livecore.store.creator_settings import CreatorSettings
from livecore.store.ledger import Ledger
from livecore.store.payouts import Payouts
from livecore.store.reports import Reports
from livecore.store.stream_ending import StreamEnding
from livecore.store.streams import Stream, Streams
from livecore.store.stripe_customers import StripeCustomers
from livecore.store.stripe_events import StripeEvents
from livecore.store.subscriptions import Subscriptions
from livecore.store.tips import Tips
from livecore.store.users import User, Users
from livecore.streams import end_routes
from livecore.streams import routes as stream_routes
from livecore.streams.ending import Endings, EndRefused, LiveEnder, NotLive, check_reason
from livecore.streams.health import IngestReport
from livecore.streams.live import BroadcastLog, RecordingDone, StateChange
from livecore.streams.playback import PlaybackRefused
from livecore.tips import (
    earnings_routes,
    figures_routes,
    payout_routes,
    subscription_routes,
    webhook_routes,
)
from livecore.tips import routes as tip_routes
from livecore.tips.breaker import CircuitBreaker
from livecore.tips.fees import FeeRecorder
from livecore.tips.payouts import PayoutService
from livecore.tips.providers import PaymentProvider, TestProvider
from livecore.tips.reversals import Reversals
from livecore.tips.service import TipService
from livecore.tips.stripe.gateway import StripeGateway, StripeProvider, StripeRail
from livecore.tips.subscriptions import SubscriptionService
from livecore.tips.webhooks import WebhookHandler
from livecore.transcode.workers import WorkerPool
from livecore.web import routes as web_routes

logger = logging.getLogger(__name__)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]
HLS_ORIGIN = web.AppKey("hls_origin", HlsOrigin)
HLS_METRICS = web.AppKey("hls_metrics", HlsMetrics)


class _OriginOf:
    """The HLS routes' directory: this app's origin, which exists once the app has started."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def lookup(self, stream: str) -> Mapping[str, RenditionView] | None:
        origin = self._app.get(HLS_ORIGIN)
        return origin.lookup(stream) if origin is not None else None

    def thumbnail(self, stream: str) -> Thumbnail | None:
        origin = self._app.get(HLS_ORIGIN)
        return origin.thumbnail(stream) if origin is not None else None


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    """Event-loop lag and garbage-collection pauses, as metrics."""
    async with RuntimeProbe(app[METRICS].registry).running():
        yield


def create_app(
    config: Config,
    *,
    database_url: str | None = None,
    mailer: MailSender | None = None,
) -> web.Application:
    """Build the application. `database_url` overrides the config (the embedded database)."""
    app = web.Application(
        middlewares=[ops_routes.observe, json_errors, body_deadline],
        client_max_size=config.max_body_bytes,
    )
    app[CONFIG] = config
    app[TRUSTED_PROXIES] = parse_networks(config.trusted_proxies)
    app[METRICS] = Metrics()
    dsn = database_url or config.database_url
    if not dsn:
        raise ValueError("no database: set database_url or start the embedded database")
    # Order matters: each context may use the ones above it; exit runs in reverse.
    app.cleanup_ctx.extend(
        [_runtime, _secret_key, _database(dsn), _auth(mailer or _mailer(config))]
    )
    ops_routes.setup(app)
    auth_routes.setup(app)
    twofactor_routes.setup(app)  # its context needs the auth context above
    stream_routes.setup(app)  # its context (the listing cache) runs before _live_media
    end_routes.setup(app)
    app.cleanup_ctx.extend([_events, _live_media, _chat, _safety, _money])
    chat_routes.setup_routes(app)
    safety_routes.setup(app)
    tip_routes.setup(app)
    earnings_routes.setup(app)
    payout_routes.setup(app)
    subscription_routes.setup(app)
    figures_routes.setup(app)
    signaling_routes.setup(app, whep_admit=_whep_admit(app))
    app[HLS_METRICS] = HlsMetrics(app[METRICS].registry)
    hls_routes.setup(
        app, _OriginOf(app), config.hls, metrics=app[HLS_METRICS],
        cdn_base_url=config.cdn_base_url, gate=stream_routes.hls_gate,
    )  # fmt: skip
    cluster_setup.setup(app)  # after _live_media (its hubs) and the HLS routes (their edge)
    app[RECORDINGS] = LocalDisk(config.data_path)
    recording_routes.setup(app, gate=stream_routes.hls_gate)
    web_routes.setup(app, stripe_js=bool(config.stripe.secret_key))
    webhook_routes.setup(app)
    admin_routes.setup(app)  # its context listens after the chat's
    rights_routes.setup(app)
    admin_console_routes.setup(app)
    # Broadcasts end before aiohttp cancels handlers and closes the contexts above.
    app.on_shutdown.extend([_end_broadcasts, _close_chat_sockets])
    return app


def _mailer(config: Config) -> MailSender:
    a = config.auth
    if not a.smtp_host:
        return LogMailSender()
    return SmtpMailSender(
        SmtpSettings(a.smtp_host, a.smtp_port, a.smtp_starttls, a.smtp_username,
                     a.smtp_password, a.mail_from)
    )  # fmt: skip


async def _secret_key(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    if config.secret_key:
        app[SECRET_KEY] = config.secret_key.encode()
    else:
        app[SECRET_KEY] = await asyncio.to_thread(_stored_secret, config.data_path / "secret_key")
    yield


def _stored_secret(path: Path) -> bytes:
    """The key generated on first start; several nodes must share LIVECORE_SECRET_KEY instead."""
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def _database(dsn: str) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        report = await apply_migrations(dsn)
        if report.applied:
            logger.info("migrations applied: %s", ", ".join(report.applied))
        db = app[DB] = await Database.connect(dsn, max_size=app[CONFIG].database_pool_size)
        app[METRICS].watch_pool(lambda: _pool_stats(db))
        yield
        await db.close(timeout_s=10)

    return context


class _RoomRecords:
    """What the bus keeps in PostgreSQL: rooms' event id blocks and their stored history."""

    def __init__(self, store: ChatStore) -> None:
        self._store = store

    async def reserve(self, room: int, count: int) -> int:
        return await self._store.reserve_event_ids(room, count)

    async def recent(self, room: int, limit: int) -> list[bytes]:
        return await self._store.recent_lines(room, limit)


async def _events(app: web.Application) -> AsyncIterator[None]:
    """The event bus: in-process on one node, Redis pub/sub when redis_url is set."""
    config = app[CONFIG]
    records = _RoomRecords(ChatStore(app[DB]))
    if config.redis_url:
        bus = RedisBus(config.redis_url, ids=records, history=config.chat.history,
                       stored=records, metrics=BusMetrics(app[METRICS].registry))  # fmt: skip
        await bus.start()
        app[BUS] = bus
    else:
        app[BUS] = LocalBus(records, history=config.chat.history, stored=records)
    yield
    await app[BUS].close()


async def _chat(app: web.Application) -> AsyncIterator[None]:
    """Chat rooms, their rules, presence and the message store writer."""
    config = app[CONFIG]
    settings = config.chat
    bus = app[BUS]
    auth = app[AUTH]
    metrics = ChatMetrics(app[METRICS].registry)

    tuning = RoomTuning(
        tick_s=settings.tick_ms / 1000, outbox_bytes=settings.outbox_bytes,
        storm_chat_per_tick=settings.storm_chat_per_tick,
    )  # fmt: skip
    rooms = Rooms(bus, tuning, metrics)
    limits = chat_limits(config)
    service = ChatService(
        bus, ChatStore(app[DB]), app[STREAM_RECORDS], app[AUDIT], rate_limiter=limits.rate,
        fallback_limiter=limits.local_rate, duplicates=limits.duplicates,
    )  # fmt: skip
    playback = app[stream_routes.PLAYBACK]

    async def may_read(user: User | None, stream: Stream) -> bool:
        if stream.visibility == "public":
            return True
        return user is not None and await playback.may_watch(user, stream)

    origins = OriginPolicy(config.public_url, config.trusted_origins)
    app[chat_context.CHAT] = chat_context.Chat(
        bus, auth, service, rooms, metrics, may_read, defaultdict(int), set(), origins
    )
    presence = Presence(
        rooms, Broadcasts(app[DB]), config.redis_url, interval_s=settings.presence_interval_s
    )
    app[stream_routes.VIEWER_COUNTS] = presence.counts
    tasks = [
        asyncio.create_task(service.run_persister(), name="chat-persister"),
        asyncio.create_task(presence.run(), name="presence"),
        asyncio.create_task(
            Heartbeat(rooms, settings.heartbeat_s, metrics).run(), name="chat-heartbeat"
        ),
    ]
    yield
    await service.drain()
    await presence.leave_all()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await rooms.close()
    await presence.close()
    await limits.close()


class _RoomModeration:
    """The chat's moderation operations for the review queue, which knows streams by id."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def stream(self, stream_id: int) -> Stream:
        facts = await Reports(self._app[DB]).stream(stream_id)
        stream = await self._app[STREAM_RECORDS].by_slug(facts.slug) if facts else None
        if stream is None:
            raise LookupError(stream_id)
        return stream

    async def delete_line(self, stream_id: int, line_id: int, actor: User) -> None:
        chat = self._app[chat_context.CHAT].service
        await chat.delete_message(await self.stream(stream_id), line_id, actor)

    async def timeout(
        self, stream_id: int, user_id: int, seconds: int, actor: User, reason: str
    ) -> None:
        chat = self._app[chat_context.CHAT].service
        await chat.timeout(await self.stream(stream_id), user_id, seconds, actor, reason)

    async def ban(self, stream_id: int, user_id: int, actor: User, reason: str) -> None:
        chat = self._app[chat_context.CHAT].service
        await chat.ban(await self.stream(stream_id), user_id, actor, reason)


class _BroadcastEnder:
    """Ending a live broadcast from the review queue, as `POST /api/v1/streams/{slug}/end`."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def end(self, stream_id: int, actor: User, reason: str) -> None:
        app = self._app
        if (problem := check_reason(reason)) is not None:
            raise NotApplicable(f"reason {problem}")
        stream = await _RoomModeration(app).stream(stream_id)
        endings = Endings(
            app[BUS], app[STREAM_RECORDS], app[AUDIT], StreamEnding(app[DB]), Broadcasts(app[DB])
        )
        try:
            await endings.end(actor, stream, reason.strip(), None)
        except NotLive:
            raise NotApplicable("the stream is not live") from None
        except EndRefused as exc:
            raise NotApplicable(str(exc)) from None
        except BusUnavailable:
            raise ActionFailed("the other nodes cannot be reached; try again") from None


class _AccountSuspender:
    """Suspending an account from the review queue, as `POST .../users/{id}/suspension`."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def suspend(self, user_id: int, actor: User, reason: str, seconds: int | None) -> None:
        app = self._app
        if (problem := check_reason(reason)) is not None:
            raise NotApplicable(f"reason {problem}")
        until = None
        if seconds is not None:
            until = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
        accounts = Accounts(app[DB], app[BUS], app[AUTH], app[USERS], app[AUDIT])
        try:
            await accounts.suspend(actor, user_id, reason.strip(), until)
        except UnknownUser:
            raise LookupError(user_id) from None
        except SelfSuspension:
            raise NotApplicable("an admin cannot suspend themselves") from None


async def _safety(app: web.Application) -> AsyncIterator[None]:
    """Reports, the review queue, and the screening worker fed by chat lines, thumbnails and
    streams going live."""
    config = app[CONFIG]
    reports = Reports(app[DB])
    storage = app[RECORDINGS]

    async def remove_recording(path: str) -> None:
        await storage.delete(path)

    service = app[safety_routes.REPORTS] = ReportService(
        reports, Broadcasts(app[DB]), app[AUDIT], _RoomModeration(app), remove_recording,
        app[stream_routes.VIEWER_COUNTS], _BroadcastEnder(app), _AccountSuspender(app),
        limit=config.safety.report_limit,
        window_s=config.safety.report_window_s,
    )  # fmt: skip

    async def describe(stream_id: int) -> list[Subject]:
        facts = await reports.stream(stream_id)
        owner = await app[USERS].get(facts.owner_id) if facts else None
        if facts is None or owner is None:
            return []
        return [
            Subject("title", facts.id, owner.id, facts.title),
            Subject("display_name", facts.id, owner.id, owner.display_name),
        ]

    screener: Screener = NoScreener()
    if config.safety.screener == "banned_terms":
        screener = BannedTermsScreener(BannedTerms(config.safety.banned_terms))
    screening = app[safety_routes.SCREENING] = ScreeningQueue(
        screener, service.flag, describe, config.safety.screening_queue, app[METRICS].registry
    )
    chat = app[chat_context.CHAT].service

    def on_line(stream_id: int, line_id: int, user_id: int, text: str) -> None:
        screening.offer(Subject("chat_line", stream_id, user_id, text, line_id))

    def on_thumbnail(stream_id: int, jpeg: bytes) -> None:
        screening.offer(Subject("thumbnail", stream_id, jpeg=jpeg))

    chat.on_line = on_line
    app[HLS_ORIGIN].on_thumbnail = on_thumbnail
    worker = asyncio.create_task(screening.run(), name="screening")
    yield
    chat.on_line = None
    app[HLS_ORIGIN].on_thumbnail = None
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)


async def _money(app: web.Application) -> AsyncIterator[None]:
    """Tips, subscriptions, payouts and the ledger behind them."""
    config = app[CONFIG]
    ledger = Ledger(app[DB])
    creators = CreatorSettings(app[DB])
    # Stripe when a secret key is configured; else the built-in test provider (test mode).
    gateway = StripeGateway(config.stripe) if config.stripe.secret_key else None
    provider: PaymentProvider = StripeProvider(gateway) if gateway else TestProvider()
    breaker = CircuitBreaker(config.stripe.breaker_failures, config.stripe.breaker_reset_s)
    chat_store = ChatStore(app[DB])

    async def blocked(stream_id: int, user_id: int) -> bool:
        bans = await chat_store.active_bans(stream_id)
        return any(ban.user_id == user_id and ban.until is None for ban in bans)

    app[tip_routes.TIPS] = TipService(
        Tips(app[DB]), app[USERS], ledger, app[BUS], config.tips, provider,
        creator_settings=creators, customers=StripeCustomers(app[DB]), breaker=breaker,
        blocked=blocked,
        screen=app[chat_context.CHAT].service.screen,
    )  # fmt: skip
    subscriptions = app[subscription_routes.SUBSCRIPTIONS] = SubscriptionService(
        app[DB], Subscriptions(app[DB]), ledger, creators, config.tips, gateway
    )
    reversals = Reversals(app[DB], ledger)
    fees = FeeRecorder(app[DB], reversals, gateway.payment_fee) if gateway else None
    app[webhook_routes.WEBHOOKS] = WebhookHandler(
        StripeEvents(app[DB]), app[tip_routes.TIPS], reversals, subscriptions,
        fees.nudge if fees else None,
    )  # fmt: skip
    # Playback and chat are built before payments: they take the subscriber check now.
    playback, chat = app[stream_routes.PLAYBACK], app[chat_context.CHAT].service
    playback.set_extra_check(subscriptions.admits)
    chat.set_may_chat_extra(subscriptions.admits)
    # The processor renews real subscriptions, and its fees are read after each payment;
    # the test lane renews its own.
    task = asyncio.create_task(
        fees.run() if fees else subscriptions.run_renewals(60.0), name="money-background"
    )
    payouts = app[payout_routes.PAYOUTS] = PayoutService(
        app[DB], ledger, Payouts(app[DB]), creators, config.tips,
        StripeRail(gateway) if gateway else None,
    )  # fmt: skip
    # Stripe transfers that had no answer are sent again (returns at once without Stripe).
    payout_retries = asyncio.create_task(payouts.run_retries(60.0), name="payout-retries")
    yield
    payout_retries.cancel()
    await asyncio.gather(payout_retries, return_exceptions=True)
    # Tips settled just before shutdown still reach their rooms (the bus closes later).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            await app[tip_routes.TIPS].announced()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    playback.set_extra_check(None)
    chat.set_may_chat_extra(None)
    if gateway is not None:
        await gateway.close()


async def _close_chat_sockets(app: web.Application) -> None:
    """Tell every chat client the node is going away (1001) before handlers are cancelled."""
    chat = app.get(chat_context.CHAT)
    if chat is None:
        return
    await asyncio.gather(
        *(ws.close(code=1001, message=b"server shutting down") for ws in list(chat.sockets)),
        return_exceptions=True,
    )


async def _live_media(app: web.Application) -> AsyncIterator[None]:
    """Hubs, publishers, and the log of broadcasts they start and end."""
    config = app[CONFIG]
    bus = app[BUS]
    background: set[asyncio.Task[Event]] = set()

    def spawn(coro: Coroutine[Any, Any, Event]) -> None:
        task = asyncio.create_task(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    install_passthrough()
    restrict_host_addresses(config.sfu.ice_host_addresses)
    enlarge_receive_buffers(config.sfu.udp_receive_buffer_bytes)
    # Before this node takes publishers: recordings it was writing when it last stopped.
    await finish_interrupted(app[DB], app[RECORDINGS])
    broadcasts = BroadcastLog(app[DB], on_change=app[stream_routes.LISTINGS].invalidate)
    writer = asyncio.create_task(broadcasts.run(), name="broadcast-log")
    hubs = app[HUBS] = HubRegistry(queue_size=config.sfu.reader_queue_units)
    # Decoding (thumbnails) runs in worker processes, never on the loop.
    workers = WorkerPool(config.hls.media_workers)
    recordings = config.data_path / RECORDINGS_ROOT
    # Packaging (Opus to AAC, muxing, files) runs in processes, never on the loop's core.
    packaging = PackagingProcesses(config.hls.packaging_processes, app[HLS_METRICS])
    origin = app[HLS_ORIGIN] = HlsOrigin(
        recordings, config.hls, workers=workers.get, metrics=app[HLS_METRICS],
        packaging=packaging,
    )  # fmt: skip
    hubs.on_open(origin.attach)

    recording_reports: set[asyncio.Task[None]] = set()

    async def report_recording(serial: int, finished: Awaitable[FinishedRecording]) -> None:
        recording = await finished  # size 0 (ended before its first segment): never listed
        broadcasts.report(RecordingDone(serial, recording.size_bytes))

    def on_state(hub: StreamHub, live: bool) -> None:
        (ender.watch if live else ender.unwatch)(hub.stream_id)
        media, recording, path = None, None, ""
        if live and (directory := origin.directory_of(hub)) is not None:
            path = str(directory.relative_to(config.data_path))
        if not live:
            rendition = (origin.lookup(hub.slug) or {}).get("source")
            video = rendition.variant("") if rendition is not None else None
            media = MediaInfo(
                video_codec=hub.video_codec or "", audio_codec=hub.audio_codec or "",
                width=video.width if video else None, height=video.height if video else None,
                bitrate_bps=hub.stats.average_bitrate_bps(),
            )  # fmt: skip
            recording = origin.recording_of(hub)
        follows = recording is not None
        broadcasts.report(StateChange(hub.stream_id, live, hub.serial, path, media, follows))
        if recording is not None:
            task = asyncio.create_task(report_recording(hub.serial, recording))
            recording_reports.add(task)
            task.add_done_callback(recording_reports.discard)
        if live and (screening := app.get(safety_routes.SCREENING)) is not None:
            screening.offer_stream(hub.stream_id)  # its title and its owner's name
        shown = None if media is None else StreamMedia(media.video_codec, media.width, media.height)
        spawn(bus.publish(hub.stream_id, StreamState("live" if live else "offline", shown)))

    app[VIEWERS] = Viewers(config.sfu)
    app[PUBLISHERS] = Publishers(
        hubs, config.sfu, on_state=on_state, metrics=SfuMetrics(app[METRICS].registry),
        transcoders=source_transcoders(app[HLS_METRICS].transcoding),
    )  # fmt: skip
    # Ends asked for on any node reach the publisher's node: it listens while live.
    ender = LiveEnder(bus, app[PUBLISHERS])
    app[stream_routes.INGEST] = _IngestProbe(app[PUBLISHERS], origin)
    retention = asyncio.create_task(
        Retention(app[DB], app[RECORDINGS], config.recordings).run(), name="retention"
    )
    yield
    retention.cancel()
    await asyncio.gather(retention, *background, return_exceptions=True)
    await ender.close()
    await app[PUBLISHERS].close()
    await app[VIEWERS].close()
    await origin.close()
    # Packaging has finished: the last recordings are complete and reported.
    await asyncio.gather(*recording_reports, return_exceptions=True)
    await packaging.close()
    await workers.close()
    try:
        await broadcasts.drain()
    except TimeoutError:
        logger.error("broadcast states not all recorded at shutdown")
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)


class _IngestProbe:
    """A stream's ingest health for the streams API: its publisher's figures (sfu/) and the
    picture size of its HLS source rendition (read from the stream's SPS by the packager)."""

    def __init__(self, publishers: Publishers, origin: HlsOrigin) -> None:
        self._publishers = publishers
        self._origin = origin

    async def report(self, stream_id: int) -> IngestReport | None:
        publisher = self._publishers.for_stream(stream_id)
        if publisher is None:
            return None
        health = await publisher.health()
        source = (self._origin.lookup(publisher.hub.slug) or {}).get("source")
        video = source.variant("") if source is not None else None
        return IngestReport(
            video_codec=health.video_codec, audio_codec=health.audio_codec,
            width=video.width if video else None, height=video.height if video else None,
            bitrate_bps=health.bitrate_bps, video_bitrate_bps=health.video_bitrate_bps,
            audio_bitrate_bps=health.audio_bitrate_bps, fps=health.fps,
            keyframe_interval_s=health.keyframe_interval_s,
            packets_received=health.packets_received, packets_lost=health.packets_lost,
            packet_loss=health.loss_fraction, last_media_s=health.last_media_s,
        )  # fmt: skip


def _whep_admit(app: web.Application) -> signaling_routes.WhepAdmit:
    async def admit(slug: str, token: str | None) -> None:
        try:
            await app[stream_routes.PLAYBACK].admit(slug, token)
        except PlaybackRefused:
            raise Forbidden("a valid playback token is required") from None

    return admit


async def _end_broadcasts(app: web.Application) -> None:
    await app[PUBLISHERS].close()
    await app[VIEWERS].close()


def _pool_stats(db: Database) -> tuple[int, int, int]:
    s = db.stats()
    return s.size, s.idle, s.max_size


def _auth(mailer: MailSender) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        db = app[DB]
        app[USERS], app[STREAM_RECORDS], app[AUDIT] = Users(db), Streams(db), AuditLog(db)
        auth = app[AUTH] = AuthService(
            app[DB], config.auth, mailer, public_url=config.public_url,
            hash_workers=max(1, min(4, os.cpu_count() or 1)),
        )  # fmt: skip
        # Accounts made before display names were unique (the name_key migration), or by an older
        # node during a rolling upgrade, get their name key before anyone registers here.
        filled, kept = await auth.fill_name_keys()
        if filled or kept:
            logger.info(
                "display names: %d accounts given their comparison key; %d share the name of "
                "an older account and keep it", filled, kept,
            )  # fmt: skip
        yield
        await auth.close()

    return context
