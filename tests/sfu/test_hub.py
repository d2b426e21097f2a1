"""The StreamHub's reader guarantees: start at a keyframe, a slow reader pays alone (and
restarts at the next keyframe), keyframe-only readers see nothing else."""

from __future__ import annotations

from livecore.sfu.hub import StreamHub, Subscription
from livecore.sfu.media import MediaUnit


def _video(pts: int, keyframe: bool = False) -> MediaUnit:
    return MediaUnit("video", "h264", b"\x00\x00\x01\x65" if keyframe else b"x", pts, 90_000,
                     keyframe)  # fmt: skip


def _audio(pts: int) -> MediaUnit:
    return MediaUnit("audio", "opus", b"a", pts, 48_000, True)


async def _read_all(hub: StreamHub, sub: Subscription) -> list[MediaUnit]:
    hub.end()
    out: list[MediaUnit] = []
    while (unit := await sub.get()) is not None:
        out.append(unit)
    return out


async def test_a_late_reader_starts_at_the_cached_keyframe() -> None:
    hub = StreamHub(1, "s")
    for unit in (_video(0), _video(1, keyframe=True), _audio(2), _video(3)):
        hub.publish(unit)
    sub = hub.subscribe("late")
    hub.publish(_video(4))
    assert [u.pts for u in await _read_all(hub, sub)] == [1, 2, 3, 4]


async def test_a_slow_reader_drops_to_the_next_keyframe_and_asks_for_one() -> None:
    asked: list[int] = []
    hub = StreamHub(1, "s", queue_size=2, request_keyframe=lambda: asked.append(1))
    slow = hub.subscribe("slow")
    fast = hub.subscribe("fast")
    got: list[int] = []
    units = [_video(0, keyframe=True), _video(1), _video(2), _video(3), _video(4, keyframe=True)]
    for unit in units:
        hub.publish(unit)
        first = await fast.get()
        assert first is not None
        got.append(first.pts)
    assert got == [0, 1, 2, 3, 4] and fast.dropped == 0  # the other reader never waits
    # The slow one kept what fitted, refused 2 (its queue full), asked for a keyframe once
    # (requests are merged), and skipped 3, which no decoder could use without 2.
    assert slow.dropped == 2 and asked == [1]
    # Ending makes room for the end marker in its full queue: the oldest unit goes.
    assert [u.pts for u in await _read_all(hub, slow)] == [1]
    read_later = hub.subscribe("after the end")
    assert await read_later.get() is None


async def test_a_keyframes_only_reader_sees_video_keyframes_alone() -> None:
    hub = StreamHub(1, "s")
    sub = hub.subscribe("thumbnails", keyframes_only=True)
    for unit in (_video(0, keyframe=True), _audio(1), _video(2), _video(3, keyframe=True)):
        hub.publish(unit)
    assert [u.pts for u in await _read_all(hub, sub)] == [0, 3]
