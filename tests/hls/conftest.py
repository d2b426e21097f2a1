"""Fixtures for hls tests: a real StreamHub fed with test media, a Packager on a temp dir,
and an aiohttp app with only the hls routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from livecore.config import HlsConfig
from livecore.errors import json_errors
from livecore.hls import routes
from livecore.hls.metrics import HlsMetrics
from livecore.hls.packager import Packager
from livecore.hls.packaging import PackagingProcesses
from livecore.hls.thumbnails import Thumbnail
from livecore.hls.views import RenditionView
from livecore.sfu.hub import StreamHub
from livecore.sfu.media import MediaUnit

Client = TestClient[Any, Any]

# 1 s segments of two 0.5 s parts with a keyframe every second: short clips still make
# several segments.
CONFIG = HlsConfig(segment_target_s=1.0, part_target_s=0.5, blocking_reload_timeout_s=4.0)


class FakeDirectory:
    """The HlsDirectory seam: slug -> renditions, filled by the test."""

    def __init__(self) -> None:
        self.streams: dict[str, dict[str, RenditionView]] = {}

    def lookup(self, stream: str) -> Mapping[str, RenditionView] | None:
        return self.streams.get(stream)

    def thumbnail(self, stream: str) -> Thumbnail | None:
        return None


@dataclass
class Broadcast:
    hub: StreamHub
    packager: Packager
    directory: Path
    publisher: asyncio.Task[None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def publish(self, units: Sequence[MediaUnit], *, speed: float | None = None) -> None:
        """Publish units, at `speed` x real time (None: all at once), then end the broadcast."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        first = units[0].pts_s if units else 0.0
        for unit in units:
            if speed is not None:
                delay = start + (unit.pts_s - first) / speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            self.hub.publish(unit)
        self.hub.end()

    def start_publishing(self, units: Sequence[MediaUnit], *, speed: float | None = None) -> None:
        self.publisher = asyncio.create_task(self.publish(units, speed=speed))


@dataclass
class Env:
    directory: FakeDirectory
    metrics: HlsMetrics
    registry: CollectorRegistry
    root: Path
    broadcasts: list[Broadcast]
    packaging: PackagingProcesses | None = None  # None: each worker in a thread

    def broadcast(self, slug: str = "demo", config: HlsConfig = CONFIG, **kwargs: Any) -> Broadcast:
        hub = StreamHub(1, slug, queue_size=10_000)
        path = self.root / slug / "source"
        kwargs.setdefault("queue_units", 10_000)
        if self.packaging is not None:
            kwargs.setdefault("link", self.packaging.link())
        packager = Packager(
            hub.subscribe("hls"), path, config, slug=slug, metrics=self.metrics, **kwargs
        )
        packager.start()
        self.directory.streams[slug] = {"source": packager}
        b = Broadcast(hub, packager, path)
        self.broadcasts.append(b)
        return b


@pytest.fixture
def workers_in() -> str:
    """Where packagers' workers run: "thread" here; test modules may ask for "process" too."""
    return "thread"


@pytest.fixture
async def env(tmp_path: Path, workers_in: str) -> AsyncIterator[Env]:
    registry = CollectorRegistry()
    packaging = PackagingProcesses(2) if workers_in == "process" else None
    e = Env(FakeDirectory(), HlsMetrics(registry), registry, tmp_path, [], packaging)
    yield e
    for b in e.broadcasts:
        if b.publisher is not None:
            b.publisher.cancel()
            await asyncio.wait([b.publisher])
        b.hub.end()
        await b.packager.aclose()
    if packaging is not None:
        await packaging.close()


@pytest.fixture
async def client(env: Env, aiohttp_client: AiohttpClient) -> Client:
    app = web.Application(middlewares=[json_errors])
    routes.setup(app, env.directory, CONFIG, metrics=env.metrics)
    return await aiohttp_client(app)
