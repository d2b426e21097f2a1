"""The HTTP server under the app: aiohttp's, with its own error answers in livecore's JSON shape.

A request aiohttp cannot parse (a URL or header line over the 8 KiB limit, a malformed
request line, bad chunked encoding) never reaches the app or its error middleware: aiohttp's
connection handler answers it itself, in plain text, from `RequestHandler.handle_error`.
aiohttp has no public hook for that answer, so this module goes below its public API, in one
place: a `RequestHandler` subclass whose `handle_error` answers `{"error": {...}}`, made by
a `Server` subclass that `AppRunner._make_server` returns. tests/app/test_server.py covers it
over a real socket, and fails if a new aiohttp moves these hooks.
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_request import BaseRequest

from livecore.errors import error_body


class _JsonErrorHandler(web.RequestHandler):
    """aiohttp's connection handler; only its own error answers change."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's version logs, refuses if a response has started, and closes the
        # connection; its plain-text answer is replaced. Its message may echo the request
        # (the long line itself): a fixed text goes back instead.
        super().handle_error(request, status, exc, message)
        if status >= 500:
            body = error_body("internal", "internal server error")
        elif isinstance(exc, LineTooLong):
            body = error_body("bad_request", "the request line or a header line is too long")
        else:
            body = error_body(_code(status), "malformed HTTP request")
        response = web.json_response(body, status=status)
        response.force_close()
        return response


def _code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_")
    except ValueError:
        return "bad_request"


class _JsonErrorServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        # Same construction as web.Server.__call__, with the handler above.
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """`web.AppRunner` whose server answers unparseable requests with JSON errors."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # Rebuilt from the server aiohttp made, so every setting it chose carries over.
        return _JsonErrorServer(
            server.request_handler, request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation, loop=server._loop,
            **server._kwargs,
        )  # fmt: skip
