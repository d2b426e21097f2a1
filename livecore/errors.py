"""API errors and the middleware that turns every failure into a JSON error body.

Domain code raises its own exceptions; route modules translate them into these. A client
never sees a stack trace: unexpected errors are logged with the request id, which the
client also gets back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)


class ApiError(Exception):
    status = 500
    code = "internal"

    def __init__(
        self,
        message: str,
        *,
        fields: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class PaymentRequired(ApiError):
    """402: the payment itself was refused (a card decline)."""

    status, code = 402, "payment_declined"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class RequestTimeout(ApiError):
    status, code = 408, "request_timeout"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PreconditionFailed(ApiError):
    status, code = 412, "precondition_failed"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class Invalid(ApiError):
    """422: the request is well-formed but some fields are wrong; `fields` names them."""

    status, code = 422, "invalid"


class TooManyRequests(ApiError):
    status, code = 429, "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after_s))})


class BadGateway(ApiError):
    """502: the payment processor refused a request it will never accept."""

    status, code = 502, "bad_gateway"


class Unavailable(ApiError):
    status, code = 503, "unavailable"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        extra: dict[str, Any] = {"fields": exc.fields} if exc.fields else {}
        body = error_body(exc.code, exc.message, **extra)
        return web.json_response(body, status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and 204s pass through untouched
        keep = {h: exc.headers[h] for h in ("Allow", "WWW-Authenticate") if h in exc.headers}
        if exc.status == 413:
            body = error_body("payload_too_large", "request body is too large")
        else:
            body = error_body(exc.reason.lower().replace(" ", "_"), exc.reason)
        return web.json_response(body, status=exc.status, headers=keep)
    except web.RequestPayloadError as exc:
        # Raised by aiohttp while the handler reads the body: a chunk, length or compressed
        # stream (Content-Encoding) that does not decode. The client's fault, not ours.
        logger.info("unreadable body in %s %s: %s", request.method, request.path, exc)
        body = error_body("bad_request", "the request body could not be read")
        return web.json_response(body, status=400)
    except Exception:
        request_id = request.get(REQUEST_ID, "")
        logger.exception(
            "unhandled error in %s %s (request %s)", request.method, request.path, request_id
        )
        body = error_body("internal", "internal server error", request_id=request_id)
        return web.json_response(body, status=500)
