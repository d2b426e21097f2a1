"""Fixtures shared by the money tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.stripe_peer import StripePeer


@pytest.fixture
async def stripe_peer() -> AsyncIterator[StripePeer]:
    """A started StripePeer, closed after the test."""
    # Here, not in tests/stripe_peer.py: the tips benchmark uses the peer too, with only
    # livecore's own dependencies installed (no pytest).
    peer = StripePeer()
    await peer.start()
    try:
        yield peer
    finally:
        await peer.close()
