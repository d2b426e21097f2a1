"""The ingest meter (sfu/ingest.py): a publisher's bitrates, frame rate and keyframe interval
over the last window, as the stream health API reports them."""

from __future__ import annotations

import pytest

from livecore.sfu.ingest import IngestMeter
from tests.support.clock import ManualClock


def test_the_meter_counts_only_the_last_window() -> None:
    clock = ManualClock(100.0)
    meter = IngestMeter(window_s=5.0, clock=clock)
    for i in range(300):  # 10 s at 30 frames/s: 1000-byte frames, a keyframe every 2 s
        clock.now = 100.0 + i / 30
        meter.record("video", "h264", 1000, keyframe=i % 60 == 0)
        meter.record("audio", "opus", 100, keyframe=True)
    video_bps, audio_bps, fps = meter.rates()
    # The last 5 s hold 150 frames (plus the one on the window's edge).
    assert fps == pytest.approx(30, abs=0.3)
    assert video_bps == pytest.approx(30 * 1000 * 8, rel=0.01)
    assert audio_bps == pytest.approx(30 * 100 * 8, rel=0.01)
    assert meter.keyframe_interval_s == pytest.approx(2.0)
    assert meter.codecs == {"video": "h264", "audio": "opus"}
    clock.now += 60  # the publisher went quiet
    assert meter.rates() == (0, 0, 0.0)


def test_the_meter_divides_by_the_time_since_the_start_within_the_first_window() -> None:
    clock = ManualClock()
    meter = IngestMeter(window_s=5.0, clock=clock)
    clock.now = 1.0
    for _ in range(30):
        meter.record("video", "vp8", 500, keyframe=False)
    assert meter.rates() == (30 * 500 * 8, 0, 30.0)
    assert meter.keyframe_interval_s is None
