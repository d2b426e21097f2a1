"""An S3-compatible bucket: the few calls recordings make of it, through aiobotocore.

aiobotocore (aio-libs) is botocore on aiohttp: every request is awaited on the event loop,
signed with the standard AWS credential chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, profiles), and works with any S3-compatible store (MinIO, Ceph, R2) given
an endpoint URL. botocore's own retries are off: the uploader retries with its own backoff,
and a VOD read that fails is answered at once rather than after seconds of retries.

Keys are `<key prefix><recording path>/<object name>`, the recording path being what the
database keeps ("recordings/7/20261207T101500000000Z"), so a recording's objects are
the files a local disk would hold, under the same names.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from livecore.config import StorageConfig
from livecore.recordings.storage import (
    ByteRange,
    ObjectStream,
    StorageUnavailable,
    UnsatisfiableRange,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

CHUNK_BYTES = 64 * 1024
_MISSING = ("NoSuchKey", "404", "NotFound")


class BucketUnavailable(StorageUnavailable):
    """The bucket did not answer in time, or answered with an error other than a missing key
    or a bad range."""


class Bucket:
    """One bucket of an S3-compatible store. `start` before use, `close` at the end."""

    def __init__(self, settings: StorageConfig) -> None:
        self.settings = settings
        self.name = settings.bucket
        self._prefix = settings.key_prefix
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None

    async def start(self) -> None:
        settings = self.settings
        config = AioConfig(
            connect_timeout=settings.request_timeout_s,
            read_timeout=settings.request_timeout_s,
            retries={"total_max_attempts": 1, "mode": "standard"},
            # Path-style keys ("endpoint/bucket/key") work with every S3-compatible store;
            # AWS S3 still accepts them.
            s3={"addressing_style": "path"},
        )
        session = get_session()
        # botocore reads its JSON service models from disk on first use: load them off the
        # loop, so creating the client does no file I/O on it.
        await asyncio.to_thread(session.warm_up_loader_caches, "s3")  # type: ignore[attr-defined]  # newer than the stubs
        creator = session.create_client(
            "s3", region_name=settings.region, endpoint_url=settings.endpoint_url or None,
            config=config,
        )  # fmt: skip
        self._client = await self._stack.enter_async_context(creator)

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()

    def key(self, path: str, name: str = "") -> str:
        """The key of object `name` of recording `path` (no name: the recording's prefix)."""
        return f"{self._prefix}{path.strip('/')}/{name}"

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise BucketUnavailable("the bucket's client is not started")
        return self._client

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store an object. Raises whatever the client raises (ClientError, botocore's
        connection errors, TimeoutError): the caller retries."""
        await self.client.put_object(Bucket=self.name, Key=key, Body=data, ContentType=content_type)

    async def read(self, key: str) -> bytes:
        """The whole object; FileNotFoundError when there is no such key."""
        stream = await self.stream(key, None)
        return b"".join([chunk async for chunk in stream.chunks])

    async def stream(self, key: str, byte_range: ByteRange | None) -> ObjectStream:
        """The object or a range of it; FileNotFoundError, UnsatisfiableRange,
        BucketUnavailable. Its body arrives under botocore's read timeout."""
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                if byte_range is None:
                    response = await self.client.get_object(Bucket=self.name, Key=key)
                else:
                    response = await self.client.get_object(
                        Bucket=self.name, Key=key, Range=byte_range.header()
                    )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _MISSING:
                raise FileNotFoundError(key) from None
            if code == "InvalidRange":
                raise UnsatisfiableRange(await self._size(key)) from None
            raise BucketUnavailable(f"get {key}: {code}") from exc
        except (BotoCoreError, OSError, TimeoutError) as exc:
            raise BucketUnavailable(f"get {key}: {exc!r}") from exc
        length = response["ContentLength"]
        content_range = response.get("ContentRange", "")
        if content_range:  # "bytes 0-99/1234"
            span, _, total = content_range.removeprefix("bytes ").partition("/")
            first_s, _, last_s = span.partition("-")
            first, last, size = int(first_s), int(last_s), int(total)
        else:
            first, last, size = 0, length - 1, length
        return ObjectStream(size, first, last, _chunks(response["Body"]))

    async def _size(self, key: str) -> int:
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                head = await self.client.head_object(Bucket=self.name, Key=key)
        except ClientError:
            raise FileNotFoundError(key) from None
        except (BotoCoreError, OSError, TimeoutError) as exc:
            raise BucketUnavailable(f"head {key}: {exc!r}") from exc
        return head["ContentLength"]

    async def list_objects(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object under `prefix`."""
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        async with asyncio.timeout(self.settings.request_timeout_s):
            async for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
                for item in page.get("Contents", []):
                    found.append((item["Key"], item["Size"]))
        return found

    async def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys at most
            batch: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys[start : start + 1000]]
            async with asyncio.timeout(self.settings.request_timeout_s):
                await self.client.delete_objects(
                    Bucket=self.name, Delete={"Objects": batch, "Quiet": True}
                )


async def _chunks(body: object) -> AsyncGenerator[bytes, None]:
    # aiobotocore's StreamingBody: read in chunks, and always release the connection.
    async with body as stream:  # type: ignore[attr-defined]  # StreamingBody is untyped here
        while chunk := await stream.read(CHUNK_BYTES):
            yield chunk
