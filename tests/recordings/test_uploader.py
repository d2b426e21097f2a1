"""The uploader against a real S3-compatible server: a full queue leaves segments on local
disk and marks the gap in the bucket's playlist; uploaded segments may leave the disk."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry

from livecore.config import StorageConfig
from livecore.hls.state import Part, Segment
from livecore.recordings.bucket import Bucket
from livecore.recordings.metrics import UploadMetrics
from livecore.recordings.uploader import BucketUploader
from tests.recordings.conftest import BUCKET
from tests.support.s3 import S3Server


def _segment(msn: int) -> Segment:
    return Segment(
        msn=msn, init=0, discontinuity=False, program_date_time=1.7e9 + 2 * msn,
        parts=(Part(msn, 0, 2.0, True, 10),), complete=True,
    )  # fmt: skip


def _write(directory: Path, names: list[str]) -> None:
    directory.mkdir(parents=True)
    for name in names:
        (directory / name).write_bytes(name.encode() * 100)


def _uploader(
    bucket: Bucket, data: Path, settings: StorageConfig
) -> tuple[BucketUploader, CollectorRegistry]:
    registry = CollectorRegistry()
    uploader = BucketUploader(
        bucket, data, settings, segment_target_s=2.0, live_segments_kept=2,
        metrics=UploadMetrics(registry),
    )  # fmt: skip
    return uploader, registry


async def _stored(bucket: Bucket, path: str) -> list[str]:
    prefix = bucket.key(path)
    return sorted(k.removeprefix(prefix) for k, _ in await bucket.list_objects(prefix))


async def test_a_full_queue_leaves_segments_on_disk_and_marks_the_gap(
    tmp_path: Path, s3_server: S3Server, storage: StorageConfig, bucket: Bucket
) -> None:
    path = "recordings/1/a"
    directory = tmp_path / path
    names = ["init-0.mp4", *(f"seg-{msn}.m4s" for msn in range(5))]
    await asyncio.to_thread(_write, directory, names)
    uploader, registry = _uploader(bucket, tmp_path, replace(storage, upload_queue_segments=2))
    try:
        await asyncio.to_thread(s3_server.stop)
        uploader.init_written(directory, 0)
        for msn in range(4):
            uploader.segment_written(directory, _segment(msn))
        assert uploader.queued_segments == 2
        assert registry.get_sample_value("livecore_recordings_upload_dropped_total") == 2
        assert registry.get_sample_value("livecore_recordings_upload_queue_segments") == 2

        await asyncio.to_thread(s3_server.start)
        await asyncio.to_thread(s3_server.create_bucket, BUCKET)
        await uploader.flushed(directory)
        uploader.segment_written(directory, _segment(4))
        uploader.finished(directory)
        await uploader.flushed(directory)
    finally:
        await uploader.close()
    assert await _stored(bucket, path) == [
        "init-0.mp4", "seg-0.m4s", "seg-1.m4s", "seg-4.m4s", "vod.m3u8",
    ]  # fmt: skip
    playlist = (await bucket.read(bucket.key(path, "vod.m3u8"))).decode()
    # The dropped segments are left out, and the next one follows a discontinuity.
    tail = playlist.split("seg-0.m4s\n", 1)[1]
    assert tail.startswith("#EXTINF:2.00000,\nseg-1.m4s\n#EXT-X-DISCONTINUITY\n")
    assert tail.endswith("#EXTINF:2.00000,\nseg-4.m4s\n#EXT-X-ENDLIST\n")
    assert "seg-2" not in playlist and "seg-3" not in playlist
    assert (registry.get_sample_value("livecore_recordings_upload_failures_total") or 0) > 0
    assert registry.get_sample_value("livecore_recordings_upload_queue_segments") == 0
    # Nothing was lost locally: the dropped segments are still on the disk.
    assert await asyncio.to_thread((directory / "seg-2.m4s").exists)


async def test_uploaded_segments_leave_the_disk_once_out_of_the_live_window(
    tmp_path: Path, storage: StorageConfig, bucket: Bucket
) -> None:
    path = "recordings/1/b"
    directory = tmp_path / path
    names = ["init-0.mp4", *(f"seg-{msn}.m4s" for msn in range(4))]
    await asyncio.to_thread(_write, directory, names)
    uploader, _ = _uploader(bucket, tmp_path, replace(storage, prune_local=True))
    try:
        uploader.init_written(directory, 0)
        for msn in range(4):
            uploader.segment_written(directory, _segment(msn))
        uploader.finished(directory)
        await uploader.flushed(directory)
    finally:
        await uploader.close()
    assert await _stored(bucket, path) == [*names, "vod.m3u8"]
    local = await asyncio.to_thread(lambda: sorted(p.name for p in directory.iterdir()))
    assert local == ["init-0.mp4", "seg-2.m4s", "seg-3.m4s"]  # the live window's two


async def test_an_unreadable_segment_is_skipped_and_the_rest_goes_up(
    tmp_path: Path, storage: StorageConfig, bucket: Bucket
) -> None:
    path = "recordings/1/c"
    directory = tmp_path / path
    await asyncio.to_thread(_write, directory, ["init-0.mp4", "seg-0.m4s", "seg-2.m4s"])
    await asyncio.to_thread((directory / "seg-1.m4s").mkdir)  # read_bytes: IsADirectoryError
    uploader, _ = _uploader(bucket, tmp_path, storage)
    try:
        uploader.init_written(directory, 0)
        for msn in range(3):
            uploader.segment_written(directory, _segment(msn))
        uploader.finished(directory)
        await uploader.flushed(directory)
    finally:
        await uploader.close()
    assert await _stored(bucket, path) == ["init-0.mp4", "seg-0.m4s", "seg-2.m4s", "vod.m3u8"]
    playlist = (await bucket.read(bucket.key(path, "vod.m3u8"))).decode()
    assert "seg-0.m4s\n#EXT-X-DISCONTINUITY\n" in playlist and "seg-1" not in playlist
