"""Requests aiohttp cannot parse (too long, malformed) are answered in the JSON error shape by
the server `livecore serve` runs, over a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from livecore.app import create_app
from livecore.config import Config
from livecore.server import AppRunner
from tests.support.fakes import CapturingMailSender


@pytest.fixture
async def port(config: Config, dsn: str, mailer: CapturingMailSender) -> AsyncIterator[int]:
    from aiohttp import web

    runner = AppRunner(create_app(config, database_url=dsn, mailer=mailer), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()  # the server closes after an error answer
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def _json(headers: dict[str, str], body: bytes) -> dict[str, dict[str, str]]:
    assert headers["content-type"].startswith("application/json")
    parsed: dict[str, dict[str, str]] = json.loads(body)
    return parsed


async def test_an_over_long_url_is_a_json_400(port: int) -> None:
    path = "/api/v1/streams/" + "a" * 10_000
    status, headers, body = await _exchange(
        port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert status == 400
    assert _json(headers, body) == {
        "error": {"code": "bad_request", "message": "the request line or a header line is too long"}
    }
    assert b"aaaaaaaa" not in body  # the request is not echoed back


async def test_an_over_long_header_is_a_json_400(port: int) -> None:
    request = f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 10_000}\r\n\r\n".encode()
    status, headers, body = await _exchange(port, request)
    assert status == 400
    assert _json(headers, body)["error"]["code"] == "bad_request"


async def test_a_malformed_request_is_a_json_400(port: int) -> None:
    status, headers, body = await _exchange(port, b"GARBAGE\r\n\r\n")
    assert status == 400
    assert _json(headers, body) == {
        "error": {"code": "bad_request", "message": "malformed HTTP request"}
    }


async def test_a_good_request_is_served_as_before(port: int) -> None:
    status, headers, _ = await _exchange(
        port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 200 and headers["content-type"].startswith("application/json")
