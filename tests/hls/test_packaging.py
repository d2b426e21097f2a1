"""Packaging processes: broadcasts share and spread over them, and one dying with restarts
turned off ends only its own broadcasts (cleanly, recordings kept) while the next broadcast
gets a new process (with restarts, its broadcasts go on: test_resuming.py)."""

from __future__ import annotations

import asyncio
import os
import signal

from livecore.hls.packaging import PackagingProcesses
from livecore.hls.playlist import render_media
from tests.hls.conftest import Env
from tests.support.media import clip


async def _started(packaging: PackagingProcesses, count: int) -> list[int]:
    async with asyncio.timeout(30):
        while len(packaging.pids) < count:  # noqa: ASYNC110  (spawned in a thread)
            await asyncio.sleep(0.05)
    return packaging.pids


async def test_broadcasts_spread_over_the_processes_then_share_them(env: Env) -> None:
    env.packaging = PackagingProcesses(2)
    try:
        media = clip(3.0).interleaved()
        broadcasts = [env.broadcast(f"s{i}") for i in range(3)]
        await asyncio.gather(*(b.publish(media) for b in broadcasts))
        for b in broadcasts:
            await asyncio.wait_for(b.packager.wait_closed(), 60)
            assert b.packager.ended and not b.packager.failed
            assert len(b.packager.segments) >= 2
        assert len(await _started(env.packaging, 2)) == 2  # three broadcasts, two processes
    finally:
        await env.packaging.close()


async def test_without_restarts_a_dead_process_ends_its_broadcast(env: Env) -> None:
    env.packaging = PackagingProcesses(1, env.metrics, restarts=0)
    try:
        units = clip(6.0).interleaved()
        first = env.broadcast("first")
        half = len(units) // 2
        for unit in units[:half]:
            first.hub.publish(unit)
        while len(first.packager.segments) < 2:
            await first.packager.wait_for(1, 0)
        (pid,) = await _started(env.packaging, 1)
        os.kill(pid, signal.SIGKILL)  # the process this test's packaging started
        await asyncio.wait_for(first.packager.wait_closed(), 30)
        p = first.packager
        assert p.ended and p.failed and p.write_errors == 0, (p.ended, p.failed, p.write_errors)
        segments = [(s.msn, s.complete, len(s.parts)) for s in p.segments]
        assert p.segments and all(s.complete for s in p.segments), segments
        text = render_media(p.media_state())
        assert text.rstrip().endswith("#EXT-X-ENDLIST")
        for unit in units[half:]:
            first.hub.publish(unit)  # nobody packages them any more; nothing breaks
        first.hub.end()

        second = env.broadcast("second")
        await second.publish(units)
        await asyncio.wait_for(second.packager.wait_closed(), 60)
        second_state = (second.packager.failed, len(second.packager.segments))
        assert not second.packager.failed and len(second.packager.segments) >= 3, second_state
        assert env.packaging.pids != [pid]
        sample = env.registry.get_sample_value
        deaths = sample("livecore_hls_packaging_process_deaths_total")
        assert deaths == 1.0, deaths
        running = sample("livecore_hls_packaging_processes")
        assert running == 1.0, running
        assert sample("livecore_hls_packaging_restarts_total") == 0.0
        assert sample("livecore_hls_packaging_restarts_exhausted_total") == 1.0
    finally:
        await env.packaging.close()


async def test_closing_while_a_process_starts_finishes_its_broadcast(env: Env) -> None:
    env.packaging = PackagingProcesses(1)
    b = env.broadcast("early")
    for unit in clip(3.0).interleaved():
        b.hub.publish(unit)  # queued while the process is still being spawned
    b.hub.end()
    await env.packaging.close()
    await asyncio.wait_for(b.packager.wait_closed(), 30)
    assert b.packager.ended and env.packaging.pids == []
    # The process got the units and the end marker before it was asked to exit.
    assert not b.packager.failed and b.packager.segments


async def test_a_stalled_process_costs_dropped_units_not_memory(env: Env) -> None:
    env.packaging = PackagingProcesses(1)
    try:
        c = clip(12.0)
        b = env.broadcast("stalled", queue_units=100)
        (pid,) = await _started(env.packaging, 1)
        units = c.interleaved()
        third = len(units) // 3
        for i, unit in enumerate(units[:third]):  # about real time: nothing is dropped
            b.hub.publish(unit)
            if i % 8 == 7:
                await asyncio.sleep(0.1)
        await b.packager.wait_for(1, 0)
        assert b.packager.dropped_units == 0
        os.kill(pid, signal.SIGSTOP)  # the process this test's packaging started
        try:
            for unit in units[third : 2 * third]:
                b.hub.publish(unit)
                await asyncio.sleep(0)  # the packager takes each unit as it comes
            # Nothing was consumed meanwhile: beyond the bound, units were dropped instead
            # of piling up in the pipe.
            assert b.packager.dropped_units > 0
            sent = sum(len(u.data) for u in units[third : 2 * third])
            assert env.packaging.buffered_bytes < sent
        finally:
            os.kill(pid, signal.SIGCONT)
        for unit in units[2 * third :]:
            b.hub.publish(unit)
        b.hub.end()
        await asyncio.wait_for(b.packager.wait_closed(), 60)
        assert not b.packager.failed and b.packager.segments[-1].complete
        # After the stall it starts again at a keyframe: every segment is decodable.
        assert all(s.parts[0].independent for s in b.packager.segments)
    finally:
        await env.packaging.close()
