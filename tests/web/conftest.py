"""Fixtures for the browser tests: headless Chromium with a fake camera."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster

from tests.web.browser import ARTIFACTS, Chromium, chromium_missing, launch

# Playwright's start-up, once per browser: it finds its bundled driver on disk and starts
# it as a subprocess. Everything after that is asynchronous messages over a pipe.
PLAYWRIGHT_STARTUP = {
    "playwright/_impl/_driver.py": {"compute_driver_executable"},
}


@pytest.fixture
async def chromium(blockbuster: BlockBuster) -> AsyncIterator[Chromium]:
    """Headless Debian Chromium with a fake camera, its WebRTC kept on 127.0.0.1."""
    for func in blockbuster.functions.values():
        for filename, names in PLAYWRIGHT_STARTUP.items():
            func.can_block_in(filename, names)
    if reason := await asyncio.to_thread(chromium_missing):
        pytest.skip(reason)
    async with launch() as browser:
        yield browser


@pytest.fixture
async def shots(request: pytest.FixtureRequest) -> Path:
    """This test's screenshot directory (emptied first), under `ARTIFACTS`."""
    directory = ARTIFACTS / str(request.node.name)
    await asyncio.to_thread(shutil.rmtree, directory, True)
    return directory
