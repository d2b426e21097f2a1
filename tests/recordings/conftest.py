"""A real S3-compatible server (moto in server mode) for the tests of recordings in a
bucket, and the storage settings that point livecore at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from livecore.config import StorageConfig
from livecore.recordings.bucket import Bucket
from tests.support.s3 import S3Server

BUCKET = "recordings"


@pytest.fixture
async def s3_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[S3Server]:
    # Credentials come from the standard AWS variables; moto takes any.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # An AWS config file of the test's own (never the machine's): reading it must not block
    # the loop (blockbuster watches).
    config_file = tmp_path / "aws-config"
    await asyncio.to_thread(config_file.write_text, "[default]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    server = S3Server(tmp_path)
    await asyncio.to_thread(server.start)
    try:
        await asyncio.to_thread(server.create_bucket, BUCKET)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@pytest.fixture
def storage(s3_server: S3Server) -> StorageConfig:
    # Fast retries: a test waits for the uploads that follow a restart.
    return StorageConfig(
        kind="s3", endpoint_url=s3_server.endpoint_url, bucket=BUCKET, key_prefix="lc/",
        retry_base_s=0.05, retry_max_s=0.5, request_timeout_s=5.0,
    )  # fmt: skip


@pytest.fixture
async def bucket(storage: StorageConfig) -> AsyncIterator[Bucket]:
    """The test's own client of the bucket, to look at what livecore put there."""
    client = Bucket(storage)
    await client.start()
    try:
        yield client
    finally:
        await client.close()
