"""One typed, frozen settings object for the whole process.

The settings, their defaults and bounds, and the checks that need more than one value. A field
made with `_secret()` is read only from the environment; `_bounded()` gives its range. Reading
them from files and the environment is `configload.py`.

Imports nothing from livecore.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A setting is unknown, of the wrong type or impossible; the message names the key."""


def _secret() -> Any:
    return field(default="", metadata={"secret": True})


def _bounded(default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    return field(default=default, metadata={"min": lo, "max": hi})


@dataclass(frozen=True, slots=True)
class AuthConfig:
    session_ttl_s: int = _bounded(30 * 24 * 3600, 60)
    # How long a node may trust a cached session lookup; a revoked session stops working on
    # every node within this bound (at most 5 s by contract).
    session_cache_s: float = _bounded(2.0, 0.0, 5.0)
    min_password_length: int = _bounded(10, 8, 128)
    argon2_time_cost: int = _bounded(3, 1, 20)
    argon2_memory_kib: int = _bounded(65536, 8, 4 * 1024 * 1024)
    argon2_parallelism: int = _bounded(2, 1, 16)
    login_max_failures: int = _bounded(5, 1)  # per account within login_window_s
    login_ip_max_failures: int = _bounded(30, 1)  # per client address within login_window_s
    login_window_s: int = _bounded(900, 1)
    # Sign-ups that reach password hashing (Argon2 is shared by every login on the node),
    # per e-mail and per client address within register_window_s; more answer 429.
    register_max_attempts: int = _bounded(5, 1)
    register_ip_max_attempts: int = _bounded(10, 1)
    register_window_s: int = _bounded(3600, 1)
    # Password-reset requests per e-mail (known or not, so the answers tell nothing) and per
    # client address within reset_window_s; more answer 429 and send no mail.
    reset_max_requests: int = _bounded(3, 1)
    reset_ip_max_requests: int = _bounded(10, 1)
    reset_window_s: int = _bounded(3600, 1)
    reset_token_ttl_s: int = _bounded(3600, 60, 7 * 24 * 3600)
    smtp_host: str = ""  # empty: password-reset mail is written to the log
    smtp_port: int = _bounded(587, 1, 65535)
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: str = _secret()
    mail_from: str = "livecore@localhost"
    # Two-factor authentication (TOTP): admins must have it on to use /api/v1/admin/*, and
    # creators before they request a payout. Off by default: any account may still turn it on.
    require_2fa_admins: bool = False
    require_2fa_payouts: bool = False
    totp_issuer: str = "livecore"  # the name authenticator apps show beside the code
    # Whether anyone may sign up as a creator; false: a creator sign-up makes a viewer
    # account and a request that an admin approves (livecore.admin).
    open_creator_signup: bool = True


@dataclass(frozen=True, slots=True)
class SfuConfig:
    # Addresses offered as ICE host candidates; empty: every interface of the machine.
    ice_host_addresses: tuple[str, ...] = ()
    # STUN/TURN URLs advertised to publishers and viewers (Link headers) and used by livecore.
    ice_servers: tuple[str, ...] = ()
    turn_username: str = ""
    turn_password: str = _secret()
    max_offer_bytes: int = _bounded(64 * 1024, 1024, 1024 * 1024)
    # A publisher whose media stops for this long has vanished: the broadcast ends.
    publisher_idle_timeout_s: float = _bounded(10.0, 1.0, 600.0)
    reader_queue_units: int = _bounded(600, 10, 100_000)
    # Kernel receive buffer asked for on each media socket (capped by net.core.rmem_max).
    udp_receive_buffer_bytes: int = _bounded(4 * 1024 * 1024, 64 * 1024, 256 * 1024 * 1024)
    # WHEP viewers this node serves at most (each costs packetising and SRTP per viewer).
    max_viewers: int = _bounded(200, 0, 100_000)


@dataclass(frozen=True, slots=True)
class HlsConfig:
    segment_target_s: float = _bounded(2.0, 0.5, 30.0)
    # Parts of 0.2 s let low-latency players sit 0.6 s behind the newest (PART-HOLD-BACK is
    # three parts): about 0.8 s glass to glass from a browser. Each viewer then asks for
    # about five parts and five playlists a second.
    part_target_s: float = _bounded(0.2, 0.1, 5.0)
    # EXT-X-SERVER-CONTROL PART-HOLD-BACK in parts: how far behind the newest part
    # low-latency players (hls.js) play. RFC 8216bis asks at least 2; 3 is its advice.
    part_hold_back_parts: float = _bounded(3.0, 2.0, 20.0)
    # Segments listed in a live media playlist (older ones stay on disk for the recording).
    live_window_segments: int = _bounded(12, 3, 1000)
    # How long a blocking playlist reload (_HLS_msn/_HLS_part) may wait.
    blocking_reload_timeout_s: float = _bounded(6.0, 0.5, 30.0)
    audio_bitrate: int = _bounded(128_000, 32_000, 512_000)
    thumbnail_interval_s: float = _bounded(10.0, 1.0, 3600.0)
    # Lifetime of a signed playback token for subscriber-only streams.
    playback_token_ttl_s: int = _bounded(6 * 3600, 60, 7 * 24 * 3600)
    # Recent segments and parts kept in memory for the players at the live edge.
    memory_cache_bytes: int = _bounded(64 * 1024 * 1024, 0, 16 * 1024 * 1024 * 1024)
    # Worker processes for CPU-heavy media work (thumbnails; later renditions).
    media_workers: int = _bounded(1, 1, 64)
    # Processes that package live broadcasts (Opus to AAC, fMP4, files), each hosting several;
    # spawned as broadcasts start. About one per core the event loop leaves free.
    packaging_processes: int = _bounded(2, 1, 64)
    # A broadcast whose packaging process dies goes on in another, after a discontinuity; one
    # whose packaging dies more than this many times within the window ends as failed.
    packaging_restarts: int = _bounded(3, 0, 100)
    packaging_restart_window_s: float = _bounded(60.0, 1.0, 86_400.0)
    # The master playlist's variants, in order: "source" (as published) and "<height>p" rungs
    # transcoded in worker processes (144p..2160p; rungs not below the source are skipped).
    renditions: tuple[str, ...] = ("source", "360p")

    def __post_init__(self) -> None:
        # The loader casts and bounds values one by one; a ladder is also checked as a whole.
        if (problem := _ladder_problem(self.renditions)) is not None:
            raise ConfigError(f"hls.renditions: {problem}")


def _ladder_problem(names: tuple[str, ...]) -> str | None:
    for name in names:
        digits = name.removesuffix("p")
        if name != "source" and not (
            name.endswith("p") and digits.isascii() and digits.isdigit() and digits[0] != "0"
            and 144 <= int(digits) <= 2160
        ):  # fmt: skip
            return f"{name!r} is not 'source' or a height from '144p' to '2160p'"
    if len(set(names)) != len(names):
        return f"{list(names)!r} lists a rendition twice"
    if "source" not in names:
        return "must include 'source' (the published stream, always packaged)"
    return None


@dataclass(frozen=True, slots=True)
class ChatConfig:
    # Events are sent to each socket at most once per tick, batched into one frame.
    tick_ms: int = _bounded(75, 10, 1000)
    # Unread bytes a socket may have waiting; a socket further behind is closed (1013).
    outbox_bytes: int = _bounded(1 << 20, 4096, 64 << 20)
    # Above this many chat lines per tick a room thins chat (tips and moderation all go out).
    storm_chat_per_tick: int = _bounded(40, 1, 10_000)
    max_connections: int = _bounded(20_000, 1)
    max_connections_per_ip: int = _bounded(100, 1)
    max_frame_bytes: int = _bounded(4096, 256, 1024 * 1024)
    heartbeat_s: float = _bounded(30.0, 1.0, 600.0)
    history: int = _bounded(50, 0, 1000)
    # Per user per room, shared by all nodes through Redis: a burst, then this many a second.
    rate_burst: int = _bounded(5, 1, 1000)
    rate_per_s: float = _bounded(1.0, 0.01, 1000.0)
    duplicate_window_s: float = _bounded(30.0, 0.0, 3600.0)
    # Any client frames (chat, pings) per socket per second before it counts as flooding.
    inbound_per_s: float = _bounded(10.0, 0.1, 1000.0)
    presence_interval_s: float = _bounded(5.0, 0.2, 300.0)
    # The join line (chat/admission.py): joins/s let in after a first burst; faster arrivals
    # wait their turn, and one that would wait over admit_max_wait_s gets 503 + Retry-After.
    admit_per_s: float = _bounded(3000.0, 0.01, 1_000_000.0)
    admit_burst: int = _bounded(1000, 1, 1_000_000)
    admit_max_wait_s: float = _bounded(10.0, 0.0, 120.0)


@dataclass(frozen=True, slots=True)
class TipsConfig:
    # The platform's share of each tip, in basis points (2000 = 20%).
    platform_fee_bps: int = _bounded(2000, 0, 10_000)
    min_tip_minor: int = _bounded(100, 1)
    max_tip_minor: int = _bounded(50_000, 1)
    currencies: tuple[str, ...] = ("usd", "eur", "gbp")
    # Abuse limits: tips one viewer may send, per minute and in minor units per day (any
    # currency counted at face value), and the largest tip from an account younger than
    # new_account_hours.
    viewer_tips_per_minute: int = _bounded(10, 1, 10_000)
    viewer_daily_minor: int = _bounded(200_000, 1)
    # Tips one card may pay in an hour, whoever sends them (checked for saved cards; a
    # card's fingerprint is known before charging only then).
    card_tips_per_hour: int = _bounded(20, 1, 100_000)
    new_account_hours: float = _bounded(24.0, 0.0, 24.0 * 365)
    new_account_max_tip_minor: int = _bounded(2_000, 1)
    # Earnings become available for payout this long after they are posted (chargebacks).
    payout_hold_days: float = _bounded(7.0, 0.0, 365.0)
    # A subscription whose renewal failed keeps its perks this long (Stripe retries meanwhile).
    past_due_grace_days: float = _bounded(3.0, 0.0, 60.0)
    # When the payment processor is unreachable, new tips go to this lane: "manual" records
    # them as pending invoices the creator settles; "none" refuses them (503).
    fallback: Literal["manual", "none"] = "manual"


@dataclass(frozen=True, slots=True)
class StripeConfig:
    # Empty: the built-in test provider (test mode, no money moves) takes payments.
    secret_key: str = _secret()
    webhook_secret: str = _secret()
    publishable_key: str = ""
    # Where Stripe's API is reached; a local Stripe-shaped server can stand in for tests.
    api_base: str = "https://api.stripe.com"
    # A call that takes longer has an unknown outcome and is reconciled before any fallback.
    timeout_s: float = _bounded(10.0, 0.1, 120.0)
    # Signed webhooks older (or further in the future) than this are refused.
    webhook_tolerance_s: int = _bounded(300, 1, 86_400)
    # Consecutive failures that open the circuit, and how long it stays open before a trial.
    breaker_failures: int = _bounded(3, 1, 1000)
    breaker_reset_s: float = _bounded(30.0, 0.1, 3600.0)


@dataclass(frozen=True, slots=True)
class RecordingsConfig:
    # Recordings older than this are deleted (0: kept forever).
    max_age_days: float = _bounded(30.0, 0.0, 36500.0)
    # When this node's recordings take more than this, the oldest are deleted (0: no limit).
    max_total_bytes: int = _bounded(50 * 1024**3, 0)
    sweep_interval_s: float = _bounded(600.0, 1.0, 86400.0)
    # At start, finish what this node was recording when it last stopped (crash, kill) and end
    # those broadcasts. `serve --processes` sets it in the first process only (it starts
    # alone): the others would take a sibling's live recordings for interrupted ones.
    recover_on_start: bool = True


@dataclass(frozen=True, slots=True)
class StorageConfig:
    # Where recordings are kept: "local" (this node's disk) or "s3" (a bucket every node reads,
    # so any node serves any recording). Credentials only from the environment: the AWS
    # variables (AWS_ACCESS_KEY_ID, ...) or whatever else the standard AWS chain finds.
    kind: Literal["local", "s3"] = "local"
    endpoint_url: str = ""  # empty: AWS S3 itself for `region`
    bucket: str = ""
    region: str = "us-east-1"
    key_prefix: str = ""  # prepended to every key ("livecore/": keys "livecore/recordings/...")
    # Segments waiting to be uploaded (all this node's broadcasts); when full, a new segment
    # stays on local disk, counted, and the bucket's playlist marks the gap (discontinuity).
    upload_queue_segments: int = _bounded(1000, 1, 1_000_000)
    upload_concurrency: int = _bounded(4, 1, 64)
    # Failed uploads are retried until they succeed, after a random delay up to
    # min(retry_max_s, retry_base_s * 2^attempt) (exponential backoff, full jitter).
    retry_base_s: float = _bounded(0.5, 0.01, 60.0)
    retry_max_s: float = _bounded(30.0, 0.05, 3600.0)
    request_timeout_s: float = _bounded(30.0, 0.5, 600.0)
    # Delete a segment's local copy once it is in the bucket and no live playlist lists it.
    prune_local: bool = False

    def __post_init__(self) -> None:
        if self.kind == "s3" and not self.bucket:
            raise ConfigError('storage.bucket: required when storage.kind is "s3"')
        if self.endpoint_url and (problem := _origin_problem(self.endpoint_url)) is not None:
            raise ConfigError(f"storage.endpoint_url: {self.endpoint_url!r} {problem}")
        if self.key_prefix.startswith("/"):
            raise ConfigError("storage.key_prefix: must not start with /")


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    # Reports one account may file within report_window_s (the rest: 429).
    report_limit: int = _bounded(10, 1, 10_000)
    report_window_s: float = _bounded(600.0, 1.0, 86400.0)
    # The screening hook: "banned_terms" (built in, no network) or "none".
    screener: Literal["banned_terms", "none"] = "banned_terms"
    # Platform-wide terms the built-in screener flags in titles, display names and chat lines.
    banned_terms: tuple[str, ...] = ()
    # Items waiting to be screened (when full, new ones are dropped and counted).
    screening_queue: int = _bounded(1000, 1, 1_000_000)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    # This node's name in the stream directory; empty: "<host name>:<port>", the same after
    # a restart. Every node of a deployment needs its own.
    id: str = ""
    # Where the other nodes reach this one (not the public URL); empty: http://<host>:<port>.
    internal_url: str = ""
    # With several processes per box, each also listens on a port of its own (its internal
    # URL): internal_port, internal_port + 1, ...; 0: free ports the OS picks.
    internal_port: int = _bounded(0, 0, 65535)
    # A directory entry lives this long unless a heartbeat renews it (a dead node's go then).
    directory_ttl_s: float = _bounded(6.0, 1.0, 300.0)
    heartbeat_s: float = _bounded(2.0, 0.1, 100.0)
    # Recent parts, segments and playlists of streams held by other nodes, kept in memory.
    edge_cache_bytes: int = _bounded(32 * 1024 * 1024, 1024 * 1024)
    # Where publishers reach this node (another draining node's WHIP 307 names it); empty:
    # the internal URL.
    public_url: str = ""
    # SIGTERM drains: no new publishes (WHIP 307 elsewhere, else 503), /readyz fails, live
    # streams go on at most this long, then what is left ends and the node exits.
    drain_grace_s: float = _bounded(25.0, 0.0, 3600.0)
    # A broadcast whose publisher left a draining node (or whose node died) stays open this
    # long for the publisher to reconnect to another node and continue it there.
    handover_s: float = _bounded(10.0, 0.0, 600.0)
    # How long this node keeps which node holds a stream (0: only requests arriving together
    # share a directory read): one read per viewer request would make a crowd wait on Redis.
    edge_owner_cache_s: float = _bounded(1.0, 0.0, 60.0)

    def __post_init__(self) -> None:
        if self.heartbeat_s >= self.directory_ttl_s:
            raise ConfigError("node.heartbeat_s: must be shorter than node.directory_ttl_s")
        if self.handover_s < self.heartbeat_s:
            # Else a node whose entries Redis lost (a restart) has its broadcasts ended before
            # its next heartbeat writes them again.
            raise ConfigError("node.handover_s: must be at least node.heartbeat_s")
        if self.internal_url and (problem := _origin_problem(self.internal_url)) is not None:
            raise ConfigError(f"node.internal_url: {self.internal_url!r} {problem}")
        if self.public_url and (problem := _origin_problem(self.public_url)) is not None:
            raise ConfigError(f"node.public_url: {self.public_url!r} {problem}")


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = _bounded(8080, 0, 65535)
    # Processes serving `port` together (SO_REUSEPORT), each its own node in the directory;
    # more than 1 needs Redis, or starts a private redis-server (`livecore serve --processes`).
    processes: int = _bounded(1, 1, 64)
    # Public base URL of this deployment (links in mail, Secure cookies when https).
    public_url: str = "http://127.0.0.1:8080"
    cdn_base_url: str = ""
    data_dir: str = "var"
    # Empty: an embedded PostgreSQL (pgserver) is started in data_dir/postgres.
    database_url: str = _secret()
    database_pool_size: int = _bounded(10, 1, 1000)
    # Empty: the in-process event bus (one node).
    redis_url: str = _secret()
    # Signs CSRF tokens (and later playback tokens); empty: generated once into data_dir.
    secret_key: str = _secret()
    max_body_bytes: int = _bounded(1024 * 1024, 1024)
    # Load balancers whose X-Forwarded-For is believed (addresses or CIDRs); empty: none,
    # and clients are known by their direct address.
    trusted_proxies: tuple[str, ...] = ()
    # Origins (scheme://host[:port]) of other sites whose pages may use a logged-in visitor's
    # session cookie on the chat WebSocket, besides public_url's own; a socket opened by any
    # other site's page is anonymous.
    trusted_origins: tuple[str, ...] = ()
    # Connections the kernel queues before livecore accepts them: a premiere brings
    # thousands in a second (the kernel caps it at net.core.somaxconn).
    listen_backlog: int = _bounded(4096, 16, 65535)
    # A connection must deliver a complete request line and headers within this of opening
    # or of its previous answer, else it is closed; so this is also how long an idle
    # keep-alive connection stays open (keep it above a load balancer's idle timeout).
    header_timeout_s: float = _bounded(75.0, 0.1, 3600.0)
    # A request body must arrive in full within this of its headers: else 408, and the
    # connection is closed.
    body_timeout_s: float = _bounded(60.0, 0.1, 3600.0)
    shutdown_timeout_s: float = _bounded(10.0, 0.0, 600.0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    auth: AuthConfig = field(default_factory=AuthConfig)
    sfu: SfuConfig = field(default_factory=SfuConfig)
    hls: HlsConfig = field(default_factory=HlsConfig)
    recordings: RecordingsConfig = field(default_factory=RecordingsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    tips: TipsConfig = field(default_factory=TipsConfig)
    stripe: StripeConfig = field(default_factory=StripeConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    node: NodeConfig = field(default_factory=NodeConfig)

    def __post_init__(self) -> None:
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigError(
                    f"trusted_proxies: {proxy!r} is not an address or network"
                ) from None
        for origin in self.trusted_origins:
            if (problem := _origin_problem(origin)) is not None:
                raise ConfigError(f"trusted_origins: {origin!r} {problem}")
        if self.processes > 1:
            if self.node.internal_url:
                raise ConfigError(
                    "node.internal_url: each of several processes has its own; leave it empty "
                    "and give node.internal_port (or none) with processes > 1"
                )
            if self.node.internal_port and self.node.internal_port + self.processes > 65536:
                raise ConfigError("node.internal_port: too high for that many processes")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")


def _origin_problem(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not a number up to 65535
    except ValueError:
        return "is not an origin (scheme://host[:port])"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an origin (scheme://host[:port])"
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return "must be only scheme://host[:port], without a path"
    return None
