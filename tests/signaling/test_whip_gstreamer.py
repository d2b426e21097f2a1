"""A GStreamer publisher (webrtcbin, as in whip-client and whipsink: an RSA certificate) goes
live over WHIP, and FFmpeg decodes the HLS. It all runs in a private network namespace (see
gst_netns.py): libnice offers no loopback candidates, and no test traffic may touch the
machine's real interfaces."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.signaling.gst_netns import CLIENT, SYSTEM_PYTHON

ROOT = Path(__file__).resolve().parents[2]


def _cannot_run() -> str | None:
    """Why this machine cannot run the test, or None. Blocks (file look-ups, processes)."""
    if os.geteuid() != 0:
        return "a private network namespace needs root"
    for tool in ("unshare", "ip", SYSTEM_PYTHON):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (bin/test installs it)"
    check = subprocess.run(
        [SYSTEM_PYTHON, str(CLIENT), "--check"], capture_output=True, text=True, timeout=30
    )
    if check.returncode != 0:
        why = (check.stdout + check.stderr).strip().splitlines()[-1:]
        return f"the GStreamer publisher cannot run: {why} (bin/test installs its packages)"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        return f"network namespaces are not allowed here: {probe.stderr.strip()}"
    return None


async def _run(*cmd: str, timeout_s: float) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()  # our own child, by PID; its namespace goes when its children end
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@pytest.mark.slow
async def test_gstreamer_webrtcbin_publisher_goes_live_and_ffmpeg_plays(
    dsn: str, tmp_path: Path
) -> None:
    if reason := await asyncio.to_thread(_cannot_run):
        pytest.skip(reason)
    status, out, err = await _run(
        "unshare", "-n", sys.executable, "-m", "tests.signaling.gst_netns",
        "--dsn", dsn, "--data-dir", str(tmp_path / "var"),
        timeout_s=90,
    )  # fmt: skip
    if status == 77:
        pytest.skip(f"cannot set up the namespace's network: {err.strip()}")
    assert status == 0, err[-4000:]
    seen = json.loads(out.strip().splitlines()[-1])
    log = "\n".join(seen["publisher_log"])
    # Before livecore answered a=setup:passive: "no shared cipher" in the publisher's log.
    assert seen["live"], f"the publisher never went live:\n{log}\n{err[-3000:]}"
    assert "a=setup:passive" in log
    assert seen["video_codec"] == "h264" and seen["audio_codec"] == "aac"
    assert seen["frames"] == 30 and seen["size"] == [320, 240]
