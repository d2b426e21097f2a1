"""A broadcast's packaging outlives its packaging process: a new worker completes the segment
that was in progress, the recording and the playlists go on after a discontinuity, and a
broadcast whose packaging keeps dying ends as failed once its restarts are spent."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

from livecore.hls.packaging import PackagingProcesses
from livecore.hls.playlist import render_media
from livecore.hls.resuming import RestartBudget
from livecore.hls.state import Segment
from livecore.hls.worker import (
    InitReady,
    Resume,
    SegmentUpdate,
    Worker,
    WorkerEvent,
    WorkerSpec,
)
from livecore.recordings.layout import part_name
from tests.hls.conftest import CONFIG, Env
from tests.hls.probe import probe
from tests.support.media import clip


def _runs(times: list[float]) -> list[list[float]]:
    """Presentation times split where they go back: each run is one side of a discontinuity
    (a new init starts its timeline at 0)."""
    runs: list[list[float]] = [[]]
    for a, b in itertools.pairwise([float("-inf"), *times]):
        if b <= a:
            runs.append([])
        runs[-1].append(b)
    return runs


def test_restart_budget_allows_so_many_restarts_within_the_window() -> None:
    budget = RestartBudget(2, 10.0)
    assert budget.allow(100.0) and budget.allow(101.0)
    assert not budget.allow(105.0)  # a third within 10 s
    assert budget.allow(110.5)  # the first has left the window (the refused one never counted)
    assert not budget.allow(110.8)  # 101 and 110.5 are within 10 s
    assert not RestartBudget(0, 10.0).allow(0.0)  # 0: never restart


def test_a_new_worker_completes_the_cut_short_segment_and_goes_on(tmp_path: Path) -> None:
    units = clip(4.0).interleaved()
    spec = WorkerSpec("demo", tmp_path, CONFIG)
    events: list[WorkerEvent] = []
    first = Worker(spec, events.append)
    first.open()
    fed = 0
    # Feed until a segment is in progress after two complete ones; then the process "dies":
    # nothing more of the first worker runs.
    while True:
        first.feed(units[fed], time.monotonic())
        fed += 1
        updates = [e.segment for e in events if isinstance(e, SegmentUpdate)]
        if sum(s.complete for s in updates) >= 2 and not updates[-1].complete:
            break
    last = updates[-1]
    stored = tuple((s.msn, len(s.parts)) for s in updates if s.complete)
    inits = [e.init.n for e in events if isinstance(e, InitReady)]
    resume = Resume(last, stored, max(inits) + 1, last.program_date_time - last.start_s)

    events2: list[WorkerEvent] = []
    second = Worker(replace(spec, resume=resume), events2.append)
    second.open()
    for unit in units[fed:]:  # mid-GOP: the new worker starts at the next keyframe
        second.feed(unit, time.monotonic())
    second.finish()

    segments: dict[int, Segment] = {}
    for event in events2:
        if isinstance(event, SegmentUpdate):
            segments[event.segment.msn] = event.segment
    completed = segments.pop(last.msn)
    assert completed.complete and completed.parts == last.parts  # the parts players saw
    after = [segments[msn] for msn in sorted(segments)]
    assert [s.msn for s in after] == list(range(last.msn + 1, last.msn + 1 + len(after)))
    assert after[0].discontinuity and after[0].init == max(inits) + 1 and after[0].independent
    assert not any(s.discontinuity for s in after[1:]) and all(s.complete for s in after)
    assert after[0].program_date_time > completed.program_date_time
    assert not (tmp_path / part_name(last.msn, len(last.parts))).exists()

    vod = (tmp_path / "vod.m3u8").read_text()
    listed = [int(line[4:-4]) for line in vod.splitlines() if line.startswith("seg-")]
    assert listed == list(range(listed[0], after[-1].msn + 1)), vod  # one recording
    assert vod.count("#EXT-X-DISCONTINUITY\n") == 1 and vod.rstrip().endswith("#EXT-X-ENDLIST")
    result = probe(str(tmp_path / "vod.m3u8"))
    runs = _runs([t for t, _ in result.video])
    assert len(runs) == 2 and all(len(run) >= 15 for run in runs), [len(r) for r in runs]


async def _new_pid(packaging: PackagingProcesses, old: int | None) -> int:
    async with asyncio.timeout(60):
        while not (pids := [p for p in packaging.pids if p != old]):  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # spawned in a thread: nothing to await
    return pids[0]


async def test_the_broadcasts_of_a_dead_process_go_on_in_a_new_one(env: Env) -> None:
    env.packaging = PackagingProcesses(1, env.metrics)
    try:
        units = clip(6.0).interleaved()
        broadcasts = [env.broadcast("first"), env.broadcast("second")]
        half = len(units) // 2
        for b in broadcasts:
            for unit in units[:half]:
                b.hub.publish(unit)
        for b in broadcasts:
            while len(b.packager.segments) < 2:
                await b.packager.wait_for(1, 0)
        pid = await _new_pid(env.packaging, None)
        os.kill(pid, signal.SIGKILL)  # the process this test's packaging started
        await _new_pid(env.packaging, pid)
        for b in broadcasts:
            await b.publish(units[half:])
        sample = env.registry.get_sample_value
        for b in broadcasts:
            await asyncio.wait_for(b.packager.wait_closed(), 60)
            p = b.packager
            assert p.ended and not p.failed, (b.hub.slug, p.failed)
            msns = [s.msn for s in p.segments]
            assert msns == list(range(msns[0], msns[0] + len(msns))), msns
            assert all(s.complete for s in p.segments)
            assert [s.discontinuity for s in p.segments].count(True) == 1
            assert p.has_init(0) and p.has_init(1)
            text = render_media(p.media_state())
            assert text.count("#EXT-X-DISCONTINUITY\n") == 1, text
            vod = await asyncio.to_thread((b.directory / "vod.m3u8").read_text)
            assert vod.count("#EXT-X-DISCONTINUITY\n") == 1, vod
            result = await asyncio.to_thread(probe, str(b.directory / "vod.m3u8"))
            runs = _runs([t for t, _ in result.video])
            assert len(runs) == 2 and all(runs), [len(r) for r in runs]
        assert sample("livecore_hls_packaging_process_deaths_total") == 1.0
        assert sample("livecore_hls_packaging_restarts_total") == 2.0  # one per broadcast
        assert sample("livecore_hls_packaging_restarts_exhausted_total") == 0.0
    finally:
        await env.packaging.close()


async def test_a_broadcast_whose_packaging_keeps_dying_ends_as_failed(env: Env) -> None:
    env.packaging = PackagingProcesses(1, env.metrics, restarts=2, restart_window_s=600)
    try:
        units = clip(6.0).interleaved()
        b = env.broadcast("poison")
        for unit in units[: len(units) // 3]:
            b.hub.publish(unit)
        await b.packager.wait_for(0, 0)
        pid = None
        for _ in range(3):  # two restarts allowed, the third death ends it
            pid = await _new_pid(env.packaging, pid)
            os.kill(pid, signal.SIGKILL)  # the process this test's packaging started
        await asyncio.wait_for(b.packager.wait_closed(), 60)
        p = b.packager
        assert p.ended and p.failed and p.write_errors == 0
        assert render_media(p.media_state()).rstrip().endswith("#EXT-X-ENDLIST")
        sample = env.registry.get_sample_value
        assert sample("livecore_hls_packaging_process_deaths_total") == 3.0
        assert sample("livecore_hls_packaging_restarts_total") == 2.0
        assert sample("livecore_hls_packaging_restarts_exhausted_total") == 1.0
        b.hub.end()
    finally:
        await env.packaging.close()


def test_a_resumed_worker_waits_for_the_keyframe_rather_than_go_on_without_video(
    tmp_path: Path,
) -> None:
    """The keyframe asked for may be slow to come on a busy machine: the worker going on
    waits for it instead of starting audio-only (and changing init again when it comes)."""
    c = clip(6.0, keyint=90)
    units = [u for u in c.interleaved() if u.pts_s > 0.1]  # the next keyframe is at 3 s
    resume = Resume(last=None, stored_parts=(), next_init=5, wall_base=None, video=True)
    events: list[WorkerEvent] = []
    worker = Worker(WorkerSpec("demo", tmp_path, CONFIG, resume=resume), events.append)
    worker.open()
    for unit in units:
        worker.feed(unit, time.monotonic())
    worker.finish()
    inits = [e.init for e in events if isinstance(e, InitReady)]
    assert [(i.n, i.video_codec is not None) for i in inits] == [(5, True)]
    segments = [e.segment for e in events if isinstance(e, SegmentUpdate)]
    assert segments[0].independent and not any(s.discontinuity for s in segments)
