"""The web pages' part of the app: their routes. `stripe_js`: Stripe takes the payments, so
the watch page may load Stripe.js. Only app.py imports this module; like all of web/, it
imports nothing else of livecore.
"""

from __future__ import annotations

from aiohttp import web

from livecore.web import routes


def setup(app: web.Application, *, stripe_js: bool) -> None:
    routes.setup(app, stripe_js=stripe_js)
