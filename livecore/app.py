"""The aiohttp application factory: a table of contents of livecore's parts.

Each package adds itself through its `setup` module (its routes, its app keys and one
cleanup context for its services and background tasks); `wiring/` joins packages that may
not import each other. The order below is the order the contexts start in: each may use
what the ones above it made, and they close in reverse. Only app.py imports the setup
modules and wiring/ (checked by lint-imports).
"""

from __future__ import annotations

from aiohttp import web

from livecore.admin import setup as admin
from livecore.appkeys import CONFIG, TRUSTED_PROXIES
from livecore.auth import setup as auth
from livecore.auth.mail import MailSender
from livecore.chat import setup as chat
from livecore.clientip import parse_networks
from livecore.cluster import setup as cluster
from livecore.config import Config
from livecore.deadlines import body_deadline
from livecore.errors import json_errors
from livecore.hls import setup as hls
from livecore.ops import setup as ops
from livecore.recordings import setup as recordings
from livecore.rights import setup as rights
from livecore.safety import setup as safety
from livecore.signaling import setup as signaling
from livecore.streams import setup as streams
from livecore.tips import setup as tips
from livecore.web import setup as pages
from livecore.wiring import foundation, media, moderation


def create_app(
    config: Config,
    *,
    database_url: str | None = None,
    mailer: MailSender | None = None,
) -> web.Application:
    """Build the application. `database_url` overrides the config (the embedded database)."""
    dsn = database_url or config.database_url
    if not dsn:
        raise ValueError("no database: set database_url or start the embedded database")
    app = web.Application(
        middlewares=[ops.observe, json_errors, body_deadline],
        client_max_size=config.max_body_bytes,
    )
    app[CONFIG] = config
    app[TRUSTED_PROXIES] = parse_networks(config.trusted_proxies)
    ops.setup(app)  # the metrics registry every part reports into; the runtime probe
    foundation.setup(app, dsn)  # the secret key, the database, the event bus
    auth.setup(app, mailer)  # accounts, sessions, 2FA; the repositories others read
    tips.setup_access(app)  # who a subscription lets in: playback and chat are built with it
    streams.setup(app)  # the stream service, listings, playback rights
    recordings.setup(app, gate=streams.hls_gate)  # storage, recovery, retention, VOD
    media.setup(app)  # hubs, HLS origin, publishers, viewers, broadcast state
    # Rooms, presence (viewer counts), the socket and moderation; stored lines are screened.
    chat.setup(app, on_line=moderation.screen_line(app))
    tips.setup(app)  # after the chat: a tip's message passes the chat's rules
    signaling.setup(app, whep_admit=streams.whep_admit(app))  # WHIP and WHEP
    hls.setup(app, gate=streams.hls_gate)  # /hls/, from the origin media.py makes
    # This node in the stream directory; with Redis, /hls/ for streams held elsewhere, and WHEP
    # offers and WHIP/WHEP sessions of other nodes sent to them.
    if (signaling_edge := cluster.setup(app)) is not None:
        signaling.serve_elsewhere(app, signaling_edge)
    pages.setup(app, stripe_js=bool(config.stripe.secret_key))
    # Reports, the review queue and screening (after the chat: it acts on rooms, counts viewers).
    safety.setup(app, moderation.actions(app), moderation.screener(config))
    admin.setup(app)  # after the chat: a suspension closes chat sockets; the console
    rights.setup(app)  # data export and account deletion
    return app
