"""Slow and stalled clients: a connection that never finishes its request line and headers,
or its body, is closed within the configured bound instead of staying open for good.

Raw sockets on loopback; the bounds are set small and each test only waits for the close
under a generous time-out, so no timing threshold is asserted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.conftest import Client, MakeClient, bearer, register

GENEROUS_S = 30.0  # far above the bounds below: only a server that never closes exceeds it


@pytest.fixture
async def strict(make_client: MakeClient) -> Client:
    return await make_client(header_timeout_s=0.5, body_timeout_s=0.5)


@asynccontextmanager
async def raw(client: Client) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    assert client.port is not None
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)


async def until_closed(reader: asyncio.StreamReader, into: bytearray | None = None) -> bytes:
    """Everything the server sends until it closes the connection (kept in `into` as it
    arrives). A reset keeps what came before it: a client that wrote after the server's
    answer and close gets a reset, and that must not hide the answer."""
    received = into if into is not None else bytearray()
    async with asyncio.timeout(GENEROUS_S):
        try:
            while chunk := await reader.read(65536):
                received.extend(chunk)
        except ConnectionResetError:
            pass
    return bytes(received)


async def _trickle(
    writer: asyncio.StreamWriter,
    byte: bytes,
    *,
    until: asyncio.Task[bytes],
    answer: bytearray | None = None,
) -> None:
    """Send `byte` every 50 ms, each in time, until the server answers (something arrives in
    `answer`) or closes (`until` is done), the connection breaks, or GENEROUS_S have passed.
    Writing after the server's answer would only draw a reset."""
    for _ in range(int(GENEROUS_S / 0.05)):  # pacing the trickle, not waiting for anything
        if answer or until.done():
            return
        try:
            writer.write(byte)
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(0.05)


def split_response(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status_line, headers, body


async def test_half_a_request_line_is_closed_within_the_bound(strict: Client) -> None:
    async with raw(strict) as (reader, writer):
        writer.write(b"GET /healthz HT")
        await writer.drain()
        assert await until_closed(reader) == b""


async def test_headers_that_never_end_are_closed_within_the_bound(strict: Client) -> None:
    async with raw(strict) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaa")
        await writer.drain()
        assert await until_closed(reader) == b""


async def test_headers_trickled_byte_by_byte_are_closed_within_the_bound(strict: Client) -> None:
    # Slowloris: each byte arrives in time, the headers as a whole never do. The bound runs
    # from the connection's start, so trickling does not extend it.
    async with raw(strict) as (reader, writer):
        closed = asyncio.create_task(until_closed(reader))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await _trickle(writer, b"a", until=closed)
        assert await closed == b""


async def test_silent_connection_is_closed_within_the_bound(strict: Client) -> None:
    async with raw(strict) as (reader, _):
        assert await until_closed(reader) == b""


async def test_idle_keep_alive_connection_is_closed_within_the_bound(strict: Client) -> None:
    async with raw(strict) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        status_line, _, _ = split_response(await reader.readuntil(b"\r\n\r\n"))
        assert status_line.startswith("HTTP/1.1 200")
        await until_closed(reader)


async def test_body_that_stops_halfway_gets_408_and_the_connection_closes(
    strict: Client,
) -> None:
    async with raw(strict) as (reader, writer):
        writer.write(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"email": "ann@exa'
        )
        await writer.drain()
        status_line, headers, body = split_response(await until_closed(reader))
    assert status_line.startswith("HTTP/1.1 408")
    assert json.loads(body[: int(headers["content-length"])]) == {
        "error": {
            "code": "request_timeout",
            "message": "the request body did not arrive in time",
        }
    }


async def test_body_uploaded_byte_by_byte_gets_408_within_the_bound(strict: Client) -> None:
    # A slow upload: bytes keep coming, the whole body never arrives in time.
    async with raw(strict) as (reader, writer):
        answer = bytearray()
        closed = asyncio.create_task(until_closed(reader, answer))
        writer.write(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n"
        )
        await _trickle(writer, b" ", until=closed, answer=answer)
        status_line, _, _ = split_response(await closed)
    assert status_line.startswith("HTTP/1.1 408")


async def test_chunked_body_that_never_ends_gets_408_and_the_connection_closes(
    strict: Client,
) -> None:
    async with raw(strict) as (reader, writer):
        writer.write(
            b"POST /api/v1/auth/password-reset HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5\r\n{"ema\r\n'
        )
        await writer.drain()
        status_line, _, _ = split_response(await until_closed(reader))
    assert status_line.startswith("HTTP/1.1 408")


async def test_sdp_offer_that_stops_halfway_gets_408(strict: Client) -> None:
    # WHIP reads its body itself, in pieces: the same bound applies.
    owner = await register(strict, creator=True)
    resp = await strict.post(
        "/api/v1/streams", json={"slug": "slow"}, headers=bearer(owner["token"])
    )
    key = (await resp.json())["stream_key"]
    async with raw(strict) as (reader, writer):
        writer.write(
            b"POST /whip/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer %s\r\nContent-Type: application/sdp\r\n"
            b"Content-Length: 500\r\n\r\nv=0\r\n" % key.encode()
        )
        await writer.drain()
        status_line, _, _ = split_response(await until_closed(reader))
    assert status_line.startswith("HTTP/1.1 408")


async def test_body_sent_in_pieces_within_the_bound_is_served(make_client: MakeClient) -> None:
    client = await make_client(body_timeout_s=GENEROUS_S)
    body = b'{"email": "ghost@example.com", "password": "correct horse battery"}'
    async with raw(client) as (reader, writer):
        writer.write(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for piece in (body[:10], body[10:30], body[30:]):
            writer.write(piece)
            await writer.drain()
        status_line, _, _ = split_response(await until_closed(reader))
    assert status_line.startswith("HTTP/1.1 401")
