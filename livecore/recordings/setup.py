"""The recordings part of the app: where recordings are kept (`storage.kind`: this node's
disk, or an S3-compatible bucket with this node's uploader), the /vod/ routes, and one
context that opens the bucket, finishes the recordings a stopped node left open (before this
node takes publishers) and runs the retention policy. Only app.py imports this module; the
live media reach the uploader through appkeys.RECORDING_UPLOADS (wiring/media.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from livecore.appkeys import CONFIG, DB, METRICS, NODE_STATE, RECORDING_UPLOADS, RECORDINGS
from livecore.recordings import routes
from livecore.recordings.bucket import Bucket
from livecore.recordings.bucket_storage import BucketStorage
from livecore.recordings.metrics import UploadMetrics
from livecore.recordings.recovery import finish_interrupted, finish_own_legs
from livecore.recordings.retention import Retention
from livecore.recordings.storage import LocalDisk, RecordingStorage
from livecore.recordings.uploader import BucketUploader

logger = logging.getLogger(__name__)


def setup(app: web.Application, *, gate: routes.Gate) -> None:
    """Add the storage, the context (before the live media's) and the routes; `gate`
    admits each VOD request (subscriber-only recordings)."""
    config = app[CONFIG]
    local = LocalDisk(config.data_path)
    if config.storage.kind == "s3":
        bucket = Bucket(config.storage)  # its client opens in the context
        app[RECORDINGS] = BucketStorage(bucket, local)
        app[RECORDING_UPLOADS] = BucketUploader(
            bucket, config.data_path, config.storage,
            segment_target_s=config.hls.segment_target_s,
            # hls.packager serves this many of a broadcast's latest segments from disk.
            live_segments_kept=2 * config.hls.live_window_segments + 1,
            metrics=UploadMetrics(app[METRICS].registry),
        )  # fmt: skip
    else:
        app[RECORDINGS] = local
    app.cleanup_ctx.append(_context)
    routes.setup(app, gate=gate, cdn_base_url=config.cdn_base_url)


async def _context(app: web.Application) -> AsyncIterator[None]:
    storage = app[RECORDINGS]
    node = app.get(NODE_STATE)  # broadcasts another node continued are left to it
    node_id = node.node_id if node is not None else None
    bucket = storage.bucket if isinstance(storage, BucketStorage) else None
    if bucket is not None:
        await bucket.start()
    try:
        # Before this node takes publishers: recordings it was writing when it last stopped.
        if not app[CONFIG].recordings.recover_on_start:
            pass  # another process of this box did, before any took publishers
        elif isinstance(storage, BucketStorage):
            try:
                await finish_interrupted(
                    app[DB], storage, recorded_here=storage.recover_local, node_id=node_id
                )
            except Exception:
                # A bucket that is down must not keep the node from serving live streams:
                # the recordings stay unfinished (and unlisted) until a start that reaches it.
                logger.exception("recordings left open by the last stop: not finished now")
        else:
            await finish_interrupted(app[DB], storage, node_id=node_id)
        if node_id:
            await _finish_own_legs(app, storage, node_id)
        retention = asyncio.create_task(
            Retention(app[DB], storage, app[CONFIG].recordings).run(), name="retention"
        )
        yield
        retention.cancel()
        await asyncio.gather(retention, return_exceptions=True)
        if (uploader := app.get(RECORDING_UPLOADS)) is not None:
            await uploader.close()
    finally:
        if bucket is not None:
            await bucket.close()


async def _finish_own_legs(app: web.Application, storage: RecordingStorage, node_id: str) -> None:
    """Legs of recordings this node id was writing when it last stopped (a process of a box
    killed and started again: no sibling finishes them, as its id comes back within the
    reaper's wait), whichever process finishes the box's interrupted recordings."""
    upload = storage.recover_local if isinstance(storage, BucketStorage) else None
    try:
        await finish_own_legs(app[DB], storage, node_id, upload=upload)
    except Exception:  # a bucket that is down: the next start, or a survivor, finishes them
        logger.exception("legs of recordings left open by the last stop: not finished now")
