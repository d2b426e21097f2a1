"""The private redis-server of several processes: it answers on its Unix socket, and the one a
killed parent left running is stopped by the next start."""

from __future__ import annotations

from pathlib import Path

import psutil
import redis

from livecore.processes.redis_server import PrivateRedis


def _ping(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return bool(client.ping())
    finally:
        client.close()


def test_a_leftover_private_redis_is_stopped_by_the_next_start(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    left = PrivateRedis(run_dir)  # its parent "dies": stop() is never called
    url = left.start()
    assert url.startswith("unix://") and _ping(url)
    leftover = psutil.Process(left.pid)
    again = PrivateRedis(run_dir)
    try:
        assert again.start() == url
        # Stopped (only a zombie until this process, its parent here, reaps it).
        assert not leftover.is_running() or leftover.status() == psutil.STATUS_ZOMBIE
        assert _ping(url)
        server = psutil.Process(again.pid)
    finally:
        again.stop()
        left.stop()  # reaps the leftover, as a parent would have
    assert not server.is_running()
    assert not (run_dir / "redis.pid").exists()
