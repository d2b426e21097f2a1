"""A broadcast recorded into a bucket whose packaging process is killed while live: the
uploads go on with the segment the new worker completes and the segments after the
discontinuity, so the bucket holds the one recording, whole, which a node that never held
the stream plays end to end."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from livecore.config import StorageConfig
from livecore.recordings.bucket import Bucket
from tests.conftest import MakeClient
from tests.hls.test_resuming_live import HLS, _new_packaging_pid, _runs, _vod_video_times
from tests.support.bucket_recording import (
    assert_finished_vod,
    bucket_objects,
    bucket_playlist,
    creator_key,
    latest_recording_path,
    listed_recordings,
    playlist_uris,
)
from tests.support.rtc import publishing


async def test_a_resumed_broadcast_is_one_recording_in_the_bucket(
    make_client: MakeClient, dsn: str, tmp_path: Path, storage: StorageConfig, bucket: Bucket
) -> None:
    node_a = await make_client(storage=storage, hls=HLS)
    key = await creator_key(node_a, "premiere")
    async with publishing(node_a, "premiere", key):
        broadcast_id, path = await latest_recording_path(dsn)
        await bucket_playlist(bucket, path, segments=2)
        pid = await _new_packaging_pid(None)
        os.kill(pid, signal.SIGKILL)  # the packaging process this test's app started
        deadline = asyncio.get_running_loop().time() + 60
        while True:  # segments after the discontinuity reach the bucket
            text = await bucket_playlist(bucket, path, segments=1)
            if text.partition("#EXT-X-DISCONTINUITY\n")[2].count("#EXTINF") >= 2:
                break
            assert asyncio.get_running_loop().time() < deadline, text
            await asyncio.sleep(0.2)
    (recording,) = await listed_recordings(node_a, "premiere")
    assert recording["id"] == broadcast_id
    final = (await bucket.read(bucket.key(path, "vod.m3u8"))).decode()
    assert_finished_vod(final, await bucket_objects(bucket, path))
    assert final.count("#EXT-X-DISCONTINUITY\n") == 1, final
    segments = [int(u[4:-4]) for u in playlist_uris(final) if u.startswith("seg-")]
    assert segments == list(range(segments[0], segments[0] + len(segments))), final

    node_b = await make_client(storage=storage, data_dir=str(tmp_path / "node-b"))
    url = str(node_b.make_url(f"/vod/{broadcast_id}/vod.m3u8"))
    runs = _runs(await asyncio.to_thread(_vod_video_times, url))
    assert len(runs) == 2 and all(len(run) >= 30 for run in runs), [len(r) for r in runs]
