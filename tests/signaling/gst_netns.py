"""Run inside a private network namespace (`unshare -n python -m tests.signaling.gst_netns`):
livecore, a GStreamer webrtcbin WHIP publisher (webrtcbin_whip.py) sending H.264 + Opus to
it, and FFmpeg (PyAV) decoding the HLS that results. Prints one JSON line: what the player
saw, and the end of the publisher's log.

libnice (under webrtcbin) never offers loopback candidates, so WebRTC between two processes
needs a non-loopback address. The namespace gets one on a veth pair whose both ends stay
inside it: nothing reaches or leaves the machine's real interfaces, and the namespace (with
every socket in it) disappears when this process and its children end. PostgreSQL is reached
on its Unix socket, which a network namespace does not hide.

Exit status 77: the namespace's network could not be set up (the test skips).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
from aiohttp import ClientSession, web

from livecore.app import create_app
from livecore.config import AuthConfig, Config, SfuConfig

ADDRESS = "10.77.0.1"
SLUG = "gstreamer"
# Debian's python3, which has python3-gi and the GStreamer typelibs (not livecore's venv).
SYSTEM_PYTHON = "/usr/bin/python3"
CLIENT = Path(__file__).with_name("webrtcbin_whip.py")
# DTLS and ICE warnings in the publisher's log: a failed handshake says why there.
CLIENT_ENV = {"GST_DEBUG": "dtls*:3,webrtcbin:3,nice:3", "GST_DEBUG_NO_COLOR": "1"}


def setup_network() -> None:
    """lo up, and a veth pair with ADDRESS on one end (both ends in this namespace)."""
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", "lc0", "type", "veth", "peer", "name", "lc1"],
        ["ip", "addr", "add", f"{ADDRESS}/32", "dev", "lc0"],
        ["ip", "link", "set", "lc0", "up"],
        ["ip", "link", "set", "lc1", "up"],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{' '.join(cmd)}: {done.stderr.strip()}", file=sys.stderr)
            sys.exit(77)


def read_hls(url: str, frames: int) -> dict[str, Any]:
    """Decode the first `frames` video frames an FFmpeg player gets from `url`."""
    with av.open(url, "r", options={"http_persistent": "0"}, timeout=10) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        decoded = 0
        size = (0, 0)
        for packet in container.demux(video):
            for frame in packet.decode():
                decoded += 1
                size = (frame.width, frame.height)
            if decoded >= frames:
                break
        return {
            "video_codec": video.codec_context.name,
            "audio_codec": audio.codec_context.name,
            "frames": decoded,
            "size": list(size),
        }


async def creator_stream_key(http: ClientSession, base: str) -> str:
    resp = await http.post(
        f"{base}/api/v1/auth/register",
        json={"email": "gst@example.com", "password": "correct horse battery",
              "display_name": "Gst", "creator": True},
    )  # fmt: skip
    assert resp.status == 201, await resp.text()
    token = (await resp.json())["token"]
    resp = await http.post(
        f"{base}/api/v1/streams", json={"slug": SLUG},
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["stream_key"])


async def wait_for_segment(
    http: ClientSession, base: str, client: asyncio.subprocess.Process, timeout_s: float
) -> str | None:
    """Poll the media playlist until it lists a whole segment; None if the publisher exits
    first or time runs out (then the publish failed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and client.returncode is None:
        async with http.get(f"{base}/hls/{SLUG}/source/index.m3u8") as resp:
            if resp.status == 200 and "#EXTINF" in await resp.text():
                return f"{base}/hls/{SLUG}/master.m3u8"
        await asyncio.sleep(0.2)
    return None


async def stop(client: asyncio.subprocess.Process) -> None:
    """Ctrl-C, as a user would (the publisher then DELETEs its session); kill if it hangs."""
    if client.returncode is None:
        client.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(5):
                await client.wait()
        except TimeoutError:
            client.kill()
            await client.wait()


async def run(dsn: str, data_dir: Path, live_timeout_s: float) -> dict[str, Any]:
    config = Config(
        data_dir=str(data_dir),
        secret_key="test-secret-key-test-secret-key",
        auth=AuthConfig(argon2_time_cost=1, argon2_memory_kib=64, argon2_parallelism=1),
        # The namespace's only non-loopback address: the one the publisher can reach.
        sfu=SfuConfig(ice_host_addresses=(ADDRESS,)),
    )
    runner = web.AppRunner(create_app(config, database_url=dsn))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    client_log = data_dir / "publisher.log"
    result: dict[str, Any] = {"live": False}
    try:
        async with ClientSession() as http:
            key = await creator_stream_key(http, base)
            with client_log.open("wb") as log:
                client = await asyncio.create_subprocess_exec(
                    SYSTEM_PYTHON, str(CLIENT), f"{base}/whip/{SLUG}", key,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, **CLIENT_ENV},
                )  # fmt: skip
            try:
                master = await wait_for_segment(http, base, client, live_timeout_s)
                if master is not None:
                    result["live"] = True
                    result.update(await asyncio.to_thread(read_hls, master, 30))
            finally:
                await stop(client)
    finally:
        await runner.cleanup()
        lines = client_log.read_text(errors="replace").splitlines()
        result["publisher_log"] = lines[-40:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--live-timeout-s", type=float, default=20.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    setup_network()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(args.dsn, args.data_dir, args.live_timeout_s))
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
