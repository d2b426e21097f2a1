"""Ingest benchmark: N WHIP publishers of 720p30 H.264 (~2.5 Mb/s) + Opus into LL-HLS.

    .venv/bin/python -m loadtests.bench_ingest [--streams N] [--seconds S] [--processes P]
    .venv/bin/python -m loadtests.bench_ingest --origin [--clients K] [--seconds S]

It starts its own `livecore serve` (embedded PostgreSQL in a temporary directory, 127.0.0.1
on a free port, ICE host candidates restricted to 127.0.0.1) and stops it with SIGTERM.
With --processes P it is `livecore serve --processes P`: the publishers' WHIP POSTs and the
HLS clients' requests spread over the processes (an HLS request on a process that does not
hold its stream is answered from the one that does), "server" CPU and RSS are those of the P
serving processes together (each one's CPU listed too), and the metrics are summed over the
processes' own addresses.

Ingest mode: a creator and N streams are made through the HTTP API. One clip (10 s of
1280x720 at 30 fps, libx264 baseline, keyint 60, in-band SPS/PPS, no B-frames, ~2.5 Mb/s,
plus 20 ms Opus) is encoded once with ffmpeg and cached in the temp directory. N aiortc
publishers in one or two separate processes loop it in real time over WHIP, each access unit
carrying an H.264 SEI (user_data_unregistered: a fixed UUID and the send time in µs,
rewritten at send time, so the clip loops without re-encoding). It measures, over a
steady-state window of --seconds:

- server CPU (user+sys of the server process, its worker processes listed apart) per stream;
- server RSS growth since before publishing, per stream;
- per stream, peer connection "connected" -> first part listed in the media playlist;
- glass to glass: an LL-HLS client follows the source playlist with blocking reloads
  (_HLS_msn/_HLS_part of the preload hint), fetches every part as soon as it is listed,
  finds the SEI in each video sample (fMP4, AVCC) and takes now - send time per frame;
- the publishers' CPU, and how much media each stream produced per second of wall time.

Origin mode (--origin): one live stream; K LL-HLS clients (Python, in client processes)
follow the live edge (blocking playlist reload, then the part), then `wrk` (or Python
clients) fetches finished segments and parts as fast as it can. Requests/s and p50/p99 are
printed separately for blocking playlist requests and for segment/part requests.

Every phase is bounded in time (--seconds, at most 300) and every loop in count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fractions
import hashlib
import json
import multiprocessing
import os
import queue
import re
import shutil
import signal
import statistics
import struct
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import aiohttp
import av
import psutil
import uvloop
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from livecore.hls.h264 import rbsp
from livecore.sfu.passthrough import restrict_host_addresses
from loadtests import hlsjs_player, pyspy
from loadtests.server import free_port, free_ports, serve_processes, start_server, stop_server

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark passphrase"
MAX_SECONDS = 300.0

FPS = 30
VIDEO_CLOCK_HZ = 90_000
AUDIO_CLOCK_HZ = 48_000
OPUS_SAMPLES = 960  # 20 ms
CLIP_SECONDS = 10
WIDTH, HEIGHT = 1280, 720
VIDEO_KBPS = 2500
KEYINT = 60  # 2 s

# user_data_unregistered SEI (H.264 D.1.6): a 16-byte UUID, then the send time in µs.
SEI_UUID = b"livecore-bench-1"
assert len(SEI_UUID) == 16
NAL_SEI = 6
SEI_USER_DATA_UNREGISTERED = 5

_VIDEO_SOURCE = f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS},noise=alls=10:allf=t"
_VIDEO_OPTIONS = {
    "preset": "veryfast",
    "profile": "baseline",
    "b": f"{VIDEO_KBPS}k",
    "maxrate": f"{VIDEO_KBPS}k",
    "bufsize": f"{VIDEO_KBPS}k",
    "x264-params": f"keyint={KEYINT}:min-keyint={KEYINT}:scenecut=0:repeat-headers=1:bframes=0",
}
_AUDIO_SOURCE = f"sine=frequency=440:sample_rate={AUDIO_CLOCK_HZ}"
_AUDIO_OPTIONS = {"b": "64k", "frame_duration": "20"}


# -- the clip -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clip:
    # Each access unit split where the SEI goes: before its first slice (Annex-B).
    video: tuple[tuple[bytes, bytes], ...]
    audio: tuple[bytes, ...]

    @property
    def video_kbps(self) -> float:
        size = sum(len(a) + len(b) for a, b in self.video)
        return size * 8 / (len(self.video) / FPS) / 1000


def clip_files() -> tuple[Path, Path]:
    """Encode the clip once (cached in the temp directory by its encoding arguments)."""
    recipe = (_VIDEO_SOURCE, _VIDEO_OPTIONS, _AUDIO_SOURCE, _AUDIO_OPTIONS, CLIP_SECONDS)
    digest = hashlib.sha256(repr(recipe).encode()).hexdigest()[:12]
    base = Path(tempfile.gettempdir()) / f"livecore-bench-clip-{digest}"
    video, audio = base.with_suffix(".h264"), base.with_suffix(".ogg")
    for path, write in ((video, _write_video), (audio, _write_audio)):
        if path.exists():
            continue
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        write(tmp)
        os.replace(tmp, path)
    return video, audio


def _write_video(path: Path) -> None:
    """Annex-B H.264 (constrained baseline, fixed GOP, SPS/PPS on every keyframe) by libx264."""
    source = av.open(f"{_VIDEO_SOURCE},trim=duration={CLIP_SECONDS}", format="lavfi")
    with source, av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=FPS, options=_VIDEO_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for frame in source.decode(video=0):
            frame.pict_type = av.video.frame.PictureType.NONE  # libx264 chooses
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _write_audio(path: Path) -> None:
    """Stereo Opus in 20 ms packets, in Ogg."""
    source = av.open(f"{_AUDIO_SOURCE}:duration={CLIP_SECONDS}", format="lavfi")
    with source, av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream(
            "libopus", rate=AUDIO_CLOCK_HZ, layout="stereo", options=_AUDIO_OPTIONS
        )
        resampler = av.AudioResampler(format="flt", layout="stereo", rate=AUDIO_CLOCK_HZ)
        for frame in source.decode(audio=0):
            for converted in resampler.resample(frame):
                out.mux(stream.encode(converted))
        for converted in resampler.resample(None):
            out.mux(stream.encode(converted))
        out.mux(stream.encode(None))


def _first_slice(au: bytes) -> int:
    """Offset of the start code of the first VCL NAL unit (types 1-5) of an access unit."""
    i = au.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(au):
        if 1 <= au[i + 3] & 0x1F <= 5:
            return i - 1 if i > 0 and au[i - 1] == 0 else i
        i = au.find(b"\x00\x00\x01", i + 3)
    return len(au)


def load_clip(paths: tuple[Path, Path]) -> Clip:
    with av.open(str(paths[0]), format="h264") as container:
        video = [bytes(p) for p in container.demux(video=0) if p.size]
    with av.open(str(paths[1])) as container:
        audio = [bytes(p) for p in container.demux(audio=0) if p.size]
    audio = audio[: CLIP_SECONDS * AUDIO_CLOCK_HZ // OPUS_SAMPLES]
    split = tuple((au[: _first_slice(au)], au[_first_slice(au) :]) for au in video)
    return Clip(split, tuple(audio))


def _escape(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes (00 00 0x -> 00 00 03 0x for x <= 3)."""
    out = bytearray()
    zeros = 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def sei_nal(send_us: int) -> bytes:
    """An Annex-B SEI NAL unit carrying `send_us` (wall clock, µs) under SEI_UUID."""
    payload = SEI_UUID + send_us.to_bytes(8, "big")
    rbsp = bytes([SEI_USER_DATA_UNREGISTERED, len(payload)]) + payload + b"\x80"
    return b"\x00\x00\x00\x01" + bytes([NAL_SEI]) + _escape(rbsp)


def sei_time_us(nal: bytes) -> int | None:
    """The send time from one of our SEI NAL units (no start code), else None."""
    if not nal or nal[0] & 0x1F != NAL_SEI or SEI_UUID not in nal:
        return None
    payload = rbsp(nal)
    at = payload.find(SEI_UUID) + len(SEI_UUID)
    return int.from_bytes(payload[at : at + 8], "big") if len(payload) >= at + 8 else None


# -- fMP4 (just enough to find the video samples of a part) ------------------------------------


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of the boxes in data[start:end]."""
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, i)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, i + 8)
            header = 16
        elif size == 0:
            size = end - i
        if size < header or i + size > end:
            return
        yield kind, i, i + header, i + size
        i += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, _, payload, box_end in _boxes(data, start, end):
        if k == kind:
            return payload, box_end
    return None


@dataclass(frozen=True, slots=True)
class InitInfo:
    video_track: int | None
    default_sizes: dict[int, int]  # trex default_sample_size per track


def parse_init(data: bytes) -> InitInfo:
    moov = _child(data, 0, len(data), b"moov")
    if moov is None:
        raise ValueError("init segment without moov")
    video: int | None = None
    sizes: dict[int, int] = {}
    for kind, _, payload, end in _boxes(data, *moov):
        if kind == b"trak":
            tkhd = _child(data, payload, end, b"tkhd")
            mdia = _child(data, payload, end, b"mdia")
            hdlr = _child(data, *mdia, b"hdlr") if mdia else None
            if tkhd is None or hdlr is None:
                continue
            version = data[tkhd[0]]
            (track_id,) = struct.unpack_from(">I", data, tkhd[0] + (20 if version else 12))
            if data[hdlr[0] + 8 : hdlr[0] + 12] == b"vide":
                video = track_id
        elif kind == b"mvex":
            for k, _, p, _ in _boxes(data, payload, end):
                if k == b"trex":
                    track_id, _, _, size = struct.unpack_from(">IIII", data, p + 4)
                    sizes[track_id] = size
    return InitInfo(video, sizes)


def video_samples(data: bytes, init: InitInfo) -> list[bytes]:
    """The video samples of a fragment (moof+mdat), in decoding order."""
    samples: list[bytes] = []
    for kind, moof_start, payload, end in _boxes(data, 0, len(data)):
        if kind != b"moof":
            continue
        for k, _, traf, traf_end in _boxes(data, payload, end):
            if k != b"traf":
                continue
            tfhd = _child(data, traf, traf_end, b"tfhd")
            if tfhd is None:
                continue
            flags = int.from_bytes(data[tfhd[0] + 1 : tfhd[0] + 4], "big")
            (track_id,) = struct.unpack_from(">I", data, tfhd[0] + 4)
            if track_id != init.video_track:
                continue
            at = tfhd[0] + 8
            base = moof_start  # default-base-is-moof (and the first traf's default)
            if flags & 0x1:
                (base,) = struct.unpack_from(">Q", data, at)
                at += 8
            at += 4 if flags & 0x2 else 0
            at += 4 if flags & 0x8 else 0
            default_size = init.default_sizes.get(track_id, 0)
            if flags & 0x10:
                (default_size,) = struct.unpack_from(">I", data, at)
            for k2, _, trun, _ in _boxes(data, traf, traf_end):
                if k2 != b"trun":
                    continue
                tflags = int.from_bytes(data[trun + 1 : trun + 4], "big")
                (count,) = struct.unpack_from(">I", data, trun + 4)
                at = trun + 8
                offset = base
                if tflags & 0x1:
                    (delta,) = struct.unpack_from(">i", data, at)
                    offset += delta
                    at += 4
                at += 4 if tflags & 0x4 else 0
                fields = [(0x100, 4), (0x200, 4), (0x400, 4), (0x800, 4)]
                for _ in range(min(count, 10_000)):
                    size = default_size
                    for bit, width in fields:
                        if tflags & bit:
                            if bit == 0x200:
                                (size,) = struct.unpack_from(">I", data, at)
                            at += width
                    samples.append(data[offset : offset + size])
                    offset += size
    return samples


def frame_send_times_us(sample: bytes) -> list[int]:
    """Send times found in the SEI NAL units of one AVCC sample (4-byte lengths)."""
    found = []
    i = 0
    while i + 4 <= len(sample):
        n = int.from_bytes(sample[i : i + 4], "big")
        nal = sample[i + 4 : i + 4 + n]
        if nal and nal[0] & 0x1F == NAL_SEI:
            us = sei_time_us(nal)
            if us is not None:
                found.append(us)
        i += 4 + n
    return found


# -- LL-HLS playlists -------------------------------------------------------------------------

_PART_URI = re.compile(r"part-(\d+)-(\d+)\.m4s")


@dataclass(frozen=True, slots=True)
class Playlist:
    parts: tuple[tuple[tuple[int, int], str, str], ...]  # ((msn, index), uri, map uri)
    segments: tuple[tuple[str, float], ...]  # complete segments: (uri, duration)
    open_s: float  # parts of the segment still being written
    hint: tuple[int, int] | None
    ended: bool


def parse_playlist(text: str) -> Playlist:
    parts = []
    segments = []
    hint = None
    map_uri = ""
    duration: float | None = None
    open_s = 0.0
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            map_uri = _attr(line, "URI")
        elif line.startswith("#EXT-X-PART:"):
            uri = _attr(line, "URI")
            m = _PART_URI.search(uri)
            if m:
                parts.append(((int(m.group(1)), int(m.group(2))), uri, map_uri))
            open_s += float(_attr(line, "DURATION", quoted=False) or 0)
        elif line.startswith("#EXT-X-PRELOAD-HINT:"):
            m = _PART_URI.search(_attr(line, "URI"))
            if m:
                hint = (int(m.group(1)), int(m.group(2)))
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line and not line.startswith("#") and duration is not None:
            segments.append((line, duration))
            duration = None
            open_s = 0.0
    return Playlist(tuple(parts), tuple(segments), open_s, hint, "#EXT-X-ENDLIST" in text)


def _attr(line: str, name: str, *, quoted: bool = True) -> str:
    pattern = rf'{name}="([^"]*)"' if quoted else rf"{name}=([^,]*)"
    m = re.search(pattern, line)
    return m.group(1) if m else ""


# -- small helpers ------------------------------------------------------------------------------


def _pct(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def _ms(values: Sequence[float], *ps: float) -> str:
    if not values:
        return "no samples"
    return ", ".join(f"p{p:g} {_pct(values, p) * 1000:.0f} ms" for p in ps)


async def _create_streams(base: str, n: int) -> list[tuple[str, str]]:
    """A creator and n streams through the API: [(slug, stream key)]."""
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base, timeout=timeout) as http:
        email = f"bench-{time.time_ns()}@example.com"
        name = email.split("@")[0]  # display names are unique
        body = {"email": email, "password": PASSWORD, "display_name": name, "creator": True}
        async with http.post("/api/v1/auth/register", json=body) as resp:
            resp.raise_for_status()
            token = (await resp.json())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        out = []
        for i in range(n):
            slug = f"ingest-{time.time_ns() % 10**9}-{i}"
            async with http.post("/api/v1/streams", json={"slug": slug}, headers=headers) as r:
                r.raise_for_status()
                data = await r.json()
            out.append((str(data["stream"]["slug"]), str(data["stream_key"])))
        return out


class ProcessWatch:
    """CPU seconds and RSS of a process tree, grouped: the server (the root, or with
    --processes its serving children; their parent too), postgres, redis, other children."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self._known: dict[int, psutil.Process] = {pid: self.root}
        self._groups: dict[int, str] = {pid: "server"}
        self.servers = [self.root]  # the processes serving requests

    def find_servers(self) -> None:
        self.servers = [psutil.Process(p) for p in serve_processes(self.root.pid)]
        for proc in self.servers:
            self._known[proc.pid] = proc
            self._groups[proc.pid] = "server"

    def _group(self, proc: psutil.Process) -> str:
        group = self._groups.get(proc.pid)
        if group is not None:
            return group
        try:
            name = proc.name()
        except psutil.Error:
            return "workers"
        group = "postgres" if "postgres" in name else "redis" if "redis" in name else "workers"
        self._groups[proc.pid] = group
        return group

    def cpu(self) -> dict[int, tuple[str, float]]:
        with contextlib.suppress(psutil.Error):
            for child in self.root.children(recursive=True):
                self._known.setdefault(child.pid, child)
        out = {}
        for pid, proc in self._known.items():
            try:
                t = proc.cpu_times()
                out[pid] = (self._group(proc), t.user + t.system)
            except psutil.Error:
                continue
        return out

    def end_orphans(self) -> None:
        """After the server is gone: end the children it left behind (a crash orphans its
        worker processes). Only processes seen as its descendants, by PID; psutil checks
        the creation time, so a reused PID is never hit."""
        left = [
            proc
            for pid, proc in self._known.items()
            if pid != self.root.pid and self._group(proc) != "postgres"
        ]
        _, alive = psutil.wait_procs(left, timeout=3)  # e.g. a resource tracker exiting
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                print(f"!! ending process {proc.pid} left behind by the server: {proc.cmdline()}")
                proc.terminate()
                proc.wait(5)

    def census(self) -> str:
        counts: dict[str, int] = defaultdict(int)
        for proc in list(self._known.values()):
            if proc.is_running():
                counts[self._group(proc)] += 1
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))

    def rss(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for proc in list(self._known.values()):
            with contextlib.suppress(psutil.Error):
                out[self._group(proc)] += proc.memory_info().rss
        return out

    @staticmethod
    def delta(a: dict[int, tuple[str, float]], b: dict[int, tuple[str, float]]) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for pid, (group, cpu) in b.items():
            out[group] += cpu - a.get(pid, (group, 0.0))[1]
        return out


def udp_drops(pids: Sequence[int]) -> int:
    """Datagrams the kernel dropped (receive buffer full) on the UDP sockets these processes
    have open now (Linux /proc/net/udp, `drops` column)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            for line in list(fh)[1:]:
                cols = line.split()
                if len(cols) > 12 and cols[9] in inodes:
                    total += int(cols[-1])
    return total


def udp_rcvbuf_errors() -> int:
    """The host's UDP RcvbufErrors counter (/proc/net/snmp)."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/net/snmp") as fh:
        rows = [line.split() for line in fh if line.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    return 0


def _host_busy_s() -> float:
    """CPU seconds all cores of the host spent not idle."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _tree_cpu(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


# With --processes, each process's own address: /metrics on the shared port is one of them.
METRICS_BASES: list[str] = []


async def _metrics(http: aiohttp.ClientSession) -> dict[str, float]:
    """Prometheus text from /metrics, summed over labels (and over processes)."""
    out: dict[str, float] = defaultdict(float)
    for url in [f"{b}/metrics" for b in METRICS_BASES] or ["/metrics"]:
        try:
            async with http.get(url) as resp:
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            continue
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith("livecore_"):
                continue
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name.split("{")[0]] += float(value)
    return out


def _log_summary(path: Path) -> list[str]:
    """Warnings and errors of the server log, grouped by message with digits masked."""
    counts: dict[str, int] = defaultdict(int)
    first: dict[str, str] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        if not re.search(r"\b(WARNING|ERROR|CRITICAL|Traceback)\b", line):
            continue
        body = re.sub(r"^\S+ \S+ ", "", line)  # drop the timestamp
        key = re.sub(r"\d+", "N", re.sub(r"ingest-\d+-\d+", "<slug>", body))[:160]
        counts[key] += 1
        first.setdefault(key, line[:300])
    return [f"{n:5d} x {first[k]}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])]


# -- publishers (run in their own processes) -------------------------------------------------


class _Pacer:
    def __init__(self) -> None:
        self.start: float | None = None

    def due(self, at_s: float) -> float:
        if self.start is None:
            self.start = time.monotonic()
        return self.start + at_s - time.monotonic()


class _VideoTrack(MediaStreamTrack):
    """Loops the clip's access units in real time, each with a fresh send-time SEI."""

    kind = "video"

    def __init__(self, clip: Clip, pacer: _Pacer) -> None:
        super().__init__()
        self._clip = clip
        self._pacer = pacer
        self.sent = 0

    async def recv(self) -> av.Packet[Any]:
        n = self.sent
        wait = self._pacer.due(n / FPS)
        if wait > 0:
            await asyncio.sleep(wait)
        head, tail = self._clip.video[n % len(self._clip.video)]
        packet = av.Packet(head + sei_nal(time.time_ns() // 1000) + tail)
        packet.pts = n * (VIDEO_CLOCK_HZ // FPS)
        packet.time_base = fractions.Fraction(1, VIDEO_CLOCK_HZ)
        self.sent += 1
        return packet


class _AudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, clip: Clip, pacer: _Pacer) -> None:
        super().__init__()
        self._clip = clip
        self._pacer = pacer
        self.sent = 0

    async def recv(self) -> av.Packet[Any]:
        n = self.sent
        wait = self._pacer.due(n * OPUS_SAMPLES / AUDIO_CLOCK_HZ)
        if wait > 0:
            await asyncio.sleep(wait)
        packet = av.Packet(self._clip.audio[n % len(self._clip.audio)])
        packet.pts = n * OPUS_SAMPLES
        packet.time_base = fractions.Fraction(1, AUDIO_CLOCK_HZ)
        self.sent += 1
        return packet


@dataclass
class _Publication:
    slug: str
    pc: Any  # RTCPeerConnection
    video: _VideoTrack
    audio: _AudioTrack
    location: str = ""


async def _publish(
    http: aiohttp.ClientSession, slug: str, key: str, clip: Clip, events: Any
) -> _Publication:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pacer = _Pacer()
    pub = _Publication(slug, pc, _VideoTrack(clip, pacer), _AudioTrack(clip, pacer))
    transceiver = pc.addTransceiver(pub.video, direction="sendonly")
    caps = RTCRtpSender.getCapabilities("video")
    h264 = [c for c in caps.codecs if c.mimeType.lower() == "video/h264"]
    rtx = [c for c in caps.codecs if c.mimeType.lower() == "video/rtx"]
    transceiver.setCodecPreferences(h264 + rtx)
    if clip.audio:
        pc.addTransceiver(pub.audio, direction="sendonly")

    @pc.on("connectionstatechange")
    def on_state() -> None:
        events.put(("state", slug, pc.connectionState, time.time()))

    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"}
    async with http.post(f"/whip/{slug}", data=pc.localDescription.sdp, headers=headers) as r:
        answer = await r.text()
        if r.status != 201:
            await pc.close()
            raise RuntimeError(f"WHIP {slug}: {r.status} {answer[:200]}")
        pub.location = r.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return pub


async def _publishers_async(
    base: str,
    streams: Sequence[tuple[str, str]],
    paths: tuple[Path, Path],
    stagger_s: float,
    max_s: float,
    video_only: bool,
    stop: MpEvent,
    events: Any,
) -> None:
    restrict_host_addresses(["127.0.0.1"])  # as tests/support/rtc.py: loopback candidates only
    clip = load_clip(paths)
    if video_only:
        clip = dataclasses.replace(clip, audio=())
    deadline = time.monotonic() + max_s
    pubs: list[_Publication] = []
    timeout = aiohttp.ClientTimeout(total=30)
    # A connection per request, as separate encoders have: with `--processes`, the kernel
    # spreads connections (not requests) over the server's processes.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(base, timeout=timeout, connector=connector) as http:
        try:
            for slug, key in streams:
                if stop.is_set() or time.monotonic() > deadline:
                    break
                try:
                    pubs.append(await _publish(http, slug, key, clip, events))
                except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                    events.put(("error", slug, str(exc), time.time()))
                await asyncio.sleep(stagger_s)
            for _ in range(int(max_s * 5) + 1):  # until told to stop, bounded
                if stop.is_set() or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.2)
        finally:
            for pub in pubs:
                events.put(("sent", pub.slug, pub.video.sent, pub.audio.sent))
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with asyncio.timeout(5), http.delete(pub.location):
                        pass
            for pub in pubs:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await pub.pc.close()
    events.put(("exit", "", os.getpid(), time.time()))


def _publishers_main(
    base: str,
    streams: list[tuple[str, str]],
    paths: tuple[Path, Path],
    stagger_s: float,
    max_s: float,
    video_only: bool,
    stop: MpEvent,
    events: Any,
) -> None:
    uvloop.run(_publishers_async(base, streams, paths, stagger_s, max_s, video_only, stop, events))


class Publishers:
    """Publisher processes, started and ended by this object only (by PID)."""

    def __init__(
        self,
        base: str,
        streams: list[tuple[str, str]],
        processes: int,
        max_s: float,
        video_only: bool = False,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.events: Any = ctx.Queue()
        self.stop = stop = ctx.Event()
        paths = clip_files()
        count = max(1, min(processes, len(streams)))
        stagger = min(0.1, 2.0 / max(1, len(streams)))
        common = (paths, stagger * count, max_s, video_only, stop, self.events)
        self.procs = [
            ctx.Process(
                target=_publishers_main,
                args=(base, streams[i::count], *common),
                name=f"bench-publisher-{i}",
            )
            for i in range(count)
        ]
        self.connected: dict[str, float] = {}
        self.states: dict[str, list[tuple[str, float]]] = defaultdict(list)
        self.errors: list[str] = []
        self.sent: dict[str, tuple[int, int]] = {}
        self.exited = 0

    def start(self) -> None:
        for p in self.procs:
            p.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def poll(self, wait_s: float = 0.0) -> None:
        """Read what the publishers reported (blocks at most wait_s)."""
        deadline = time.monotonic() + wait_s
        for _ in range(100_000):
            try:
                left = deadline - time.monotonic()
                msg = self.events.get(timeout=left) if left > 0 else self.events.get_nowait()
            except queue.Empty:
                return
            kind, slug, value, extra = msg
            if kind == "state":
                self.states[slug].append((value, extra))
                if value == "connected":
                    self.connected.setdefault(slug, extra)
            elif kind == "error":
                self.errors.append(f"{slug}: {value}")
            elif kind == "sent":
                self.sent[slug] = (value, extra)
            elif kind == "exit":
                self.exited += 1

    async def apoll(self, wait_s: float) -> None:
        await asyncio.to_thread(self.poll, wait_s)

    def close(self, timeout_s: float = 20) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout_s
        while self.exited < len(self.pids) and time.monotonic() < deadline:
            self.poll(0.2)
        for p in self.procs:
            if p.pid is None:
                continue  # never started
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGKILL)
                p.join(5)


# -- LL-HLS clients ----------------------------------------------------------------------------


async def _first_part(http: aiohttp.ClientSession, slug: str, deadline: float) -> float | None:
    """Wall time at which the stream's media playlist first listed a part (or None)."""
    url = f"/hls/{slug}/source/index.m3u8"
    for _ in range(100_000):
        if time.monotonic() > deadline:
            return None
        try:
            async with http.get(url) as resp:
                text = await resp.text()
                now = time.time()
            if resp.status == 200 and ("#EXT-X-PART:" in text or "#EXTINF:" in text):
                return now
        except (aiohttp.ClientError, TimeoutError):
            pass
        # 404 before the hub exists; once it does, the request blocks until the first part.
        await asyncio.sleep(0.02)
    return None


@dataclass
class FollowResult:
    latencies_s: list[float] = field(default_factory=list)  # per frame: arrival - send
    edge_s: list[float] = field(default_factory=list)  # per part: arrival - newest frame
    parts: int = 0
    frames_without_sei: int = 0
    blocking: list[float] = field(default_factory=list)  # blocking playlist request times
    part_fetch: list[float] = field(default_factory=list)
    released: list[tuple[tuple[int, int], float]] = field(default_factory=list)
    hint_misses: int = 0
    timeouts: int = 0
    errors: list[str] = field(default_factory=list)


async def follow(
    http: aiohttp.ClientSession,
    slug: str,
    until: float,
    window: tuple[float, float],
    *,
    parse: bool = True,
) -> FollowResult:
    """Follow the live edge like an LL-HLS player: block on the preload-hinted part, then
    fetch every newly listed part. Samples are kept only for arrivals inside `window`
    (wall-clock); `parse=False` only times requests (origin mode)."""
    res = FollowResult()
    base = f"/hls/{slug}/source/"
    inits: dict[str, InitInfo] = {}
    async with http.get(base + "index.m3u8") as resp:
        if resp.status != 200:
            res.errors.append(f"playlist {resp.status}")
            return res
        playlist = parse_playlist(await resp.text())
    done = playlist.parts[-1][0] if playlist.parts else (-1, -1)
    for _ in range(1_000_000):
        if time.monotonic() > until or playlist.ended or playlist.hint is None:
            break
        hint = playlist.hint
        url = f"{base}index.m3u8?_HLS_msn={hint[0]}&_HLS_part={hint[1]}"
        started = time.perf_counter()
        try:
            async with http.get(url) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            res.errors.append(f"blocking reload: {exc!r}")
            await asyncio.sleep(0.5)
            continue
        now = time.time()
        if status == 503:
            res.timeouts += 1
            continue
        if status != 200:
            res.errors.append(f"blocking reload {status}")
            await asyncio.sleep(0.5)
            continue
        inside = window[0] <= now <= window[1]
        if inside:
            res.blocking.append(time.perf_counter() - started)
            res.released.append((hint, now))
        playlist = parse_playlist(text)
        listed = {key for key, _, _ in playlist.parts}
        if hint not in listed and any(key > hint for key in listed):
            res.hint_misses += 1
        for key, uri, map_uri in playlist.parts:
            if key <= done:
                continue
            started = time.perf_counter()
            try:
                if parse and map_uri not in inits:
                    async with http.get(base + map_uri) as resp:
                        inits[map_uri] = parse_init(await resp.read())
                started = time.perf_counter()
                async with http.get(base + uri) as resp:
                    data = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                res.errors.append(f"{uri}: {exc!r}")
                await asyncio.sleep(0.5)
                break  # reload the playlist
            arrival = time.time()
            done = key
            if status != 200:
                res.errors.append(f"{uri}: {status}")
                continue
            if not window[0] <= arrival <= window[1]:
                continue
            res.parts += 1
            res.part_fetch.append(time.perf_counter() - started)
            if not parse:
                continue
            newest = 0
            for sample in video_samples(data, inits[map_uri]):
                times = frame_send_times_us(sample)
                if not times:
                    res.frames_without_sei += 1
                for us in times:
                    res.latencies_s.append(arrival - us / 1e6)
                    newest = max(newest, us)
            if newest:
                res.edge_s.append(arrival - newest / 1e6)
    return res


# -- ingest mode ----------------------------------------------------------------------------


async def _ingest(
    args: argparse.Namespace, base: str, server: subprocess.Popen[bytes], watch: ProcessWatch
) -> None:
    n = args.streams
    streams = await _create_streams(base, n)
    await asyncio.sleep(1.0)
    rss0 = watch.rss()
    startup_s = 20.0 + 0.2 * n
    max_s = startup_s + args.warmup + args.seconds + 30
    pubs = Publishers(base, streams, args.publisher_processes, max_s, args.video_only)
    timeout = aiohttp.ClientTimeout(total=15)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(base, timeout=timeout, connector=connector) as http:
        try:
            await _ingest_measure(args, base, http, streams, watch, rss0, pubs, startup_s)
        finally:
            await asyncio.to_thread(pubs.close)


async def _ingest_measure(
    args: argparse.Namespace,
    base: str,
    http: aiohttp.ClientSession,
    streams: list[tuple[str, str]],
    watch: ProcessWatch,
    rss0: dict[str, int],
    pubs: Publishers,
    startup_s: float,
) -> None:
    n = len(streams)
    slugs = [slug for slug, _ in streams]
    started = time.monotonic()
    first_tasks = {s: asyncio.create_task(_first_part(http, s, started + startup_s)) for s in slugs}
    pubs.start()
    first_seen: dict[str, float] = {}
    for _ in range(100_000):
        await pubs.apoll(0.1)
        for s, task in first_tasks.items():
            if task.done() and s not in first_seen:
                t = task.result()
                if t is not None:
                    first_seen[s] = t
        if all(t.done() for t in first_tasks.values()) or time.monotonic() > started + startup_s:
            break
    for task in first_tasks.values():
        task.cancel()
    await asyncio.gather(*first_tasks.values(), return_exceptions=True)
    ramp_s = time.monotonic() - started
    print(
        f"streams live: {len(first_seen)}/{n} (parts listed) after {ramp_s:.1f}s; "
        f"publishers connected: {len(pubs.connected)}/{n}"
    )
    went_live = [s for s in slugs if s in first_seen]
    w0 = time.time() + args.warmup
    w1 = w0 + args.seconds
    # hls.js takes a few seconds to settle at the live edge: it starts before the warm-up.
    player = asyncio.create_task(hlsjs_player.play(base, went_live[0], (w0 + 2, w1))) if (
        args.hlsjs and went_live) else None  # fmt: skip
    await asyncio.sleep(args.warmup)

    # Steady-state window.
    g2g_slugs = went_live[: args.g2g_streams]
    followers = [
        asyncio.create_task(follow(http, s, time.monotonic() + args.seconds + 5, (w0, w1)))
        for s in g2g_slugs
    ]
    produced0 = await _produced_s(http, slugs)
    cpu0 = watch.cpu()
    pub_cpu0 = _tree_cpu(pubs.pids)
    own0 = time.process_time()
    metrics0 = await _metrics(http)
    rcvbuf0 = udp_rcvbuf_errors()
    host0 = _host_busy_s()
    t0 = time.monotonic()
    profiler = await _start_py_spy(args, watch.servers[0].pid)
    probe = asyncio.create_task(_probe(http, t0 + args.seconds))
    per_second: list[float] = []
    rss_peak = watch.rss()
    last = cpu0
    while time.monotonic() < t0 + args.seconds:
        await pubs.apoll(min(1.0, t0 + args.seconds - time.monotonic()))
        now_cpu = watch.cpu()
        per_second.append(watch.delta(last, now_cpu)["server"])
        last = now_cpu
        rss = watch.rss()
        if rss["server"] > rss_peak["server"]:
            rss_peak = rss
    elapsed = time.monotonic() - t0
    cpu1 = watch.cpu()
    host = _host_busy_s() - host0
    await pyspy.finish(profiler, args.py_spy, "the server")
    pub_cpu = _tree_cpu(pubs.pids) - pub_cpu0
    own_cpu = time.process_time() - own0
    rcvbuf = udp_rcvbuf_errors() - rcvbuf0
    server_drops = udp_drops([p.pid for p in watch.servers])
    pub_drops = udp_drops(pubs.pids)
    rss1 = watch.rss()
    produced1 = await _produced_s(http, slugs)
    metrics1 = await _metrics(http)
    results = await asyncio.gather(*followers)
    probes = await probe
    await pubs.apoll(0.2)

    cpu = watch.delta(cpu0, cpu1)
    cores = os.cpu_count() or 1
    ended = {
        s for s, v in pubs.states.items() if any(x in ("failed", "closed") and t < w1 for x, t in v)
    }
    if ended:
        live = n - len(ended)
        print(
            f"!! {len(ended)} of {n} connections failed or closed before the window's end; "
            f"CPU per stream still live: {cpu['server'] / elapsed * 100 / max(1, live):.2f}%"
        )
    print(f"cores: {cores}, streams: {n}, window: {elapsed:.1f}s, processes: {watch.census()}")
    server_pct = cpu["server"] / elapsed * 100
    print(
        f"server CPU ({len(watch.servers)} serving processes): {server_pct:.1f}% of one core "
        f"in total, {server_pct / n:.2f}% per stream "
        f"(1 s samples: max {max(per_second, default=0) * 100:.0f}%); "
        f"worker processes {cpu['workers'] / elapsed * 100:.1f}%, "
        f"postgres {cpu['postgres'] / elapsed * 100:.1f}%, "
        f"redis {cpu['redis'] / elapsed * 100:.1f}%"
    )
    if len(watch.servers) > 1:
        shares = [
            (cpu1.get(p.pid, ("", 0.0))[1] - cpu0.get(p.pid, ("", 0.0))[1]) / elapsed * 100
            for p in watch.servers
        ]
        print("  per serving process: " + ", ".join(f"{x:.0f}%" for x in shares))
    with_workers = (cpu["server"] + cpu["workers"]) / elapsed * 100
    print(f"server + workers CPU per stream: {with_workers / n:.2f}% of one core")
    grow = rss1["server"] - rss0["server"]
    print(
        f"server RSS: {rss0['server'] / 2**20:.0f} MiB before publishing, "
        f"{rss1['server'] / 2**20:.0f} MiB at the end (peak {rss_peak['server'] / 2**20:.0f}), "
        f"+{grow / 2**20 / n:.1f} MiB per stream; workers {rss1['workers'] / 2**20:.0f} MiB"
    )
    rates = [
        (produced1[s] - produced0[s]) / elapsed for s in slugs if s in produced0 and s in produced1
    ]
    if rates:
        print(
            "media packaged per wall second (1.0 = real time): "
            f"min {min(rates):.2f}, median {statistics.median(rates):.2f}"
        )
    both = [s for s in slugs if s in first_seen and s in pubs.connected]
    startup = [first_seen[s] - pubs.connected[s] for s in both]
    print(
        f"connected -> first part listed ({len(startup)} streams): "
        + (f"p50 {_pct(startup, 50):.2f}s, max {max(startup):.2f}s" if startup else "none")
    )
    lat = [x for r in results for x in r.latencies_s]
    edge = [x for r in results for x in r.edge_s]
    print(
        f"glass to glass over LL-HLS ({len(g2g_slugs)} streams followed, {len(lat)} frames, "
        f"{sum(r.parts for r in results)} parts): {_ms(lat, 50, 90)}, "
        f"max {max(lat, default=float('nan')) * 1000:.0f} ms"
    )
    print(f"  newest frame of each part on arrival: {_ms(edge, 50, 90)}")
    if player is not None:
        played = await player
        if played.error:
            print(f"glass to glass in hls.js: not measured ({played.error})")
        else:
            print(
                f"glass to glass in hls.js (headless Chromium, low-latency mode, 1 stream, "
                f"{len(played.latency_ms)} samples over {played.played_s:.1f}s played): "
                f"{_ms([x / 1000 for x in played.latency_ms], 50, 90)} "
                f"(min {min(played.latency_ms, default=0):.0f}, "
                f"max {max(played.latency_ms, default=0):.0f} ms); "
                f"stalls {played.stalls}; its target latency {played.target_latency_s:.2f}s"
            )
    print(
        f"  blocking reloads: {_ms([x for r in results for x in r.blocking], 50, 99)}; "
        f"part fetches {_ms([x for r in results for x in r.part_fetch], 50, 99)}; "
        f"hint misses {sum(r.hint_misses for r in results)}, "
        f"503s {sum(r.timeouts for r in results)}, "
        f"frames without SEI {sum(r.frames_without_sei for r in results)}"
    )
    for r in results:
        for e in r.errors[:3]:
            print(f"  client error: {e}")
    print(
        f"server responsiveness, GET /healthz every 100 ms ({len(probes)}): "
        f"{_ms(probes, 50, 99)}, max {max(probes, default=float('nan')) * 1000:.0f} ms"
    )
    print(
        f"publisher CPU ({len(pubs.procs)} processes): {pub_cpu / elapsed * 100:.0f}% of one core"
        f"; HLS client CPU (this process): {own_cpu / elapsed * 100:.0f}%"
    )
    _print_metrics(metrics0, metrics1, elapsed)
    others = host - cpu["server"] - cpu["workers"] - cpu["postgres"] - pub_cpu - own_cpu
    print(
        f"host CPU busy {host / elapsed * 100:.0f}% of one core ({cores} cores), of which "
        f"{max(0.0, others) / elapsed * 100:.0f}% by other processes"
        + (" (Chromium's among them)" if args.hlsjs else "")
        + "; "
        f"load average {os.getloadavg()[0]:.1f}"
        + (
            "  !! the host was not quiet: figures are pessimistic"
            if others / elapsed > 0.1 and not args.hlsjs
            else ""
        )
    )
    print(
        f"UDP datagrams dropped, receive buffer full: {rcvbuf} on the host in the window; "
        f"since start on the server's sockets {server_drops}, on the publishers' {pub_drops}"
    )
    bad = {s: v for s, v in pubs.states.items() if any(x in ("failed", "closed") for x, _ in v)}
    print(f"publishers whose connection failed or closed during the run: {len(bad)}")
    for s, v in list(bad.items())[:5]:
        states = " -> ".join(f"{x} ({t - w1:+.1f}s)" for x, t in v)
        print(f"  {s}: {states} (times relative to the window's end)")
    for e in pubs.errors[:5]:
        print(f"publisher error: {e}")


async def _probe(http: aiohttp.ClientSession, until: float) -> list[float]:
    """Latency of a trivial request every 100 ms: how long the server's loop is busy."""
    out: list[float] = []
    for _ in range(int(MAX_SECONDS * 10)):
        if time.monotonic() >= until:
            break
        started = time.perf_counter()
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get("/healthz") as resp:
                await resp.read()
        out.append(time.perf_counter() - started)
        await asyncio.sleep(max(0.0, 0.1 - out[-1]))
    return out


async def _start_py_spy(args: argparse.Namespace, pid: int) -> asyncio.subprocess.Process | None:
    """Sample the server and its worker processes with py-spy for most of the window."""
    if args.py_spy is None:
        return None
    extra = ["--subprocesses", *(["--gil"] if args.gil else [])]
    return await pyspy.start(pid, args.py_spy, seconds=args.seconds, rate=50, extra=extra)


async def _produced_s(http: aiohttp.ClientSession, slugs: Sequence[str]) -> dict[str, float]:
    """Seconds of media packaged per stream so far: the recording playlist's finished
    segments plus the parts of the open segment from the live playlist."""

    async def one(slug: str) -> tuple[str, float | None]:
        try:
            async with http.get(f"/hls/{slug}/source/index.m3u8") as resp:
                live = parse_playlist(await resp.text())
            async with http.get(f"/hls/{slug}/source/vod.m3u8") as resp:
                if resp.status != 200:
                    return slug, None
                vod = parse_playlist(await resp.text())
        except (aiohttp.ClientError, TimeoutError):
            return slug, None
        # The open segment of `live` may have been finished (and be in `vod`) in between.
        last = live.segments[-1][0] if live.segments else None
        finished = vod.segments[-1][0] if vod.segments else None
        return slug, sum(d for _, d in vod.segments) + (live.open_s if last == finished else 0)

    pairs = await asyncio.gather(*(one(s) for s in slugs))
    return {s: v for s, v in pairs if v is not None}


def _print_metrics(m0: dict[str, float], m1: dict[str, float], elapsed: float) -> None:
    def d(name: str) -> float:
        return m1.get(name, 0.0) - m0.get(name, 0.0)

    lag_n = d("livecore_hls_part_production_lag_seconds_count")
    lag = d("livecore_hls_part_production_lag_seconds_sum") / lag_n if lag_n else float("nan")
    print(
        "server metrics over the window: "
        f"ingest {d('livecore_sfu_ingest_bytes_total') * 8 / elapsed / 1e6:.1f} Mb/s, "
        f"RTP packets lost {d('livecore_sfu_packets_lost_total'):.0f}, "
        f"keyframe requests {d('livecore_sfu_keyframe_requests_total'):.0f}, "
        f"packager dropped units {d('livecore_hls_packager_dropped_units_total'):.0f}, "
        f"disk write errors {d('livecore_hls_disk_write_errors_total'):.0f}, "
        f"mean part production lag {lag * 1000:.0f} ms"
    )


# -- origin mode ----------------------------------------------------------------------------


@dataclass
class ViewerResult:
    blocking: list[float]
    parts: list[float]
    released: list[tuple[tuple[int, int], float]]
    timeouts: int
    errors: list[str]
    cpu_s: float


async def _viewers_async(base: str, slug: str, clients: int, seconds: float) -> ViewerResult:
    w0 = time.time()
    window = (w0, w0 + seconds)
    timeout = aiohttp.ClientTimeout(total=15)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(base, timeout=timeout, connector=connector) as http:
        until = time.monotonic() + seconds
        runs = await asyncio.gather(
            *(follow(http, slug, until, window, parse=False) for _ in range(clients)),
            return_exceptions=True,
        )
    res = ViewerResult([], [], [], 0, [], 0.0)
    for r in runs:
        if isinstance(r, BaseException):
            res.errors.append(repr(r))
            continue
        res.blocking += r.blocking
        res.parts += r.part_fetch
        res.released += r.released
        res.timeouts += r.timeouts
        res.errors += r.errors
    res.cpu_s = time.process_time()
    return res


def _viewers(job: tuple[str, str, int, float]) -> ViewerResult:
    return uvloop.run(_viewers_async(*job))


_WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def _wrk_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def _origin(
    args: argparse.Namespace, base: str, server: subprocess.Popen[bytes], watch: ProcessWatch
) -> None:
    streams = await _create_streams(base, 1)
    slug = streams[0][0]
    max_s = 60 + 2 * args.seconds + 60
    pubs = Publishers(base, streams, 1, max_s)
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(base, timeout=timeout) as http:
        pubs.start()
        try:
            first = await _first_part(http, slug, time.monotonic() + 30)
            if first is None:
                raise SystemExit("the stream never listed a part")
            for _ in range(200):  # a few finished segments to fetch in phase 2
                await asyncio.sleep(0.5)
                async with http.get(f"/hls/{slug}/source/index.m3u8") as resp:
                    if len(parse_playlist(await resp.text()).segments) >= 3:
                        break
            await _origin_viewers(args, base, slug, watch, pubs)
            await _origin_segments(args, http, base, slug, watch)
        finally:
            await asyncio.to_thread(pubs.close)


async def _origin_viewers(
    args: argparse.Namespace, base: str, slug: str, watch: ProcessWatch, pubs: Publishers
) -> None:
    procs = max(1, min(args.client_processes, args.clients))
    per = [args.clients // procs + (1 if i < args.clients % procs else 0) for i in range(procs)]
    cpu0 = watch.cpu()
    pub0 = _tree_cpu(pubs.pids)
    started = time.monotonic()
    jobs = [(base, slug, k, args.seconds) for k in per]
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        results = await asyncio.to_thread(pool.map, _viewers, jobs)
    elapsed = time.monotonic() - started
    cpu = watch.delta(cpu0, watch.cpu())
    pub_cpu = _tree_cpu(pubs.pids) - pub0
    blocking = [x for r in results for x in r.blocking]
    parts = [x for r in results for x in r.parts]
    released: dict[tuple[int, int], list[float]] = defaultdict(list)
    for r in results:
        for key, t in r.released:
            released[key].append(t)
    spread = [t - min(ts) for ts in released.values() if len(ts) > 1 for t in ts]
    window = args.seconds
    print(f"cores: {os.cpu_count()}")
    print(f"LL-HLS viewers: {args.clients} clients in {procs} processes, {window:.0f}s window")
    print(
        f"  blocking playlist requests: {len(blocking) / window:,.0f}/s, "
        f"{_ms(blocking, 50, 99)} (mostly waiting for the next part)"
    )
    print(f"  part requests after the reload: {len(parts) / window:,.0f}/s, {_ms(parts, 50, 99)}")
    print(
        f"  fan-out: response time after the first client got the same part: "
        f"{_ms(spread, 50, 99)}, max {max(spread, default=float('nan')) * 1000:.0f} ms"
    )
    errors = [e for r in results for e in r.errors]
    print(f"  503s: {sum(r.timeouts for r in results)}, errors: {len(errors)}")
    for e in sorted(set(errors))[:5]:
        print(f"    {e}")
    print(
        f"  server CPU {cpu['server'] / elapsed * 100:.0f}% of one core; "
        f"client CPU {sum(r.cpu_s for r in results) / elapsed * 100:.0f}%; "
        f"publisher CPU {pub_cpu / elapsed * 100:.0f}%"
    )


async def _origin_segments(
    args: argparse.Namespace, http: aiohttp.ClientSession, base: str, slug: str, watch: ProcessWatch
) -> None:
    prefix = f"/hls/{slug}/source/"
    async with http.get(prefix + "index.m3u8") as resp:
        playlist = parse_playlist(await resp.text())
    paths = [prefix + uri for uri, _ in playlist.segments] + [
        prefix + uri for _, uri, _ in playlist.parts[:-1]
    ]
    sizes = []
    for p in paths[:50]:
        async with http.get(p) as resp:
            sizes.append(len(await resp.read()))
    cpu0 = watch.cpu()
    started = time.monotonic()
    if shutil.which("wrk") and not args.python_client:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write(_WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths))
        try:
            cmd = ["wrk", "-t", "1", "-c", str(args.clients), "-d", f"{int(args.seconds)}s",
                   "--latency", "-s", fh.name, base]  # fmt: skip
            out = await asyncio.to_thread(
                subprocess.run, cmd, capture_output=True, text=True, timeout=args.seconds + 60
            )
        finally:
            os.unlink(fh.name)
        elapsed = time.monotonic() - started
        total_m = re.search(r"(\d+) requests in", out.stdout)
        total = int(total_m.group(1)) if total_m else 0
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
        socket_err = re.search(r"Socket errors: (.*)", out.stdout)
        print(f"segment/part requests (wrk, {args.clients} connections, {len(paths)} URLs):")
        print(
            f"  {total / elapsed:,.0f} requests/s, p50 {_wrk_ms(out.stdout, '50%'):.2f} ms, "
            f"p99 {_wrk_ms(out.stdout, '99%'):.2f} ms, "
            f"non-2xx {non2xx.group(1) if non2xx else 0}"
            + (f", socket errors: {socket_err.group(1)}" if socket_err else "")
        )
        mb = re.search(r"Transfer/sec:\s+(\S+)", out.stdout)
        mean_kib = statistics.mean(sizes) / 1024 if sizes else 0
        print(f"  transfer {mb.group(1) if mb else '?'}/s (mean object {mean_kib:.0f} KiB)")
    else:
        lat: list[float] = []
        errors = 0
        deadline = time.monotonic() + args.seconds

        async def loop(i: int) -> None:
            nonlocal errors
            for j in range(1_000_000):
                if time.monotonic() > deadline:
                    return
                t = time.perf_counter()
                try:
                    async with http.get(paths[(i + j) % len(paths)]) as resp:
                        await resp.read()
                        errors += resp.status != 200
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                lat.append(time.perf_counter() - t)

        await asyncio.gather(*(loop(i) for i in range(args.clients)))
        elapsed = time.monotonic() - started
        print(f"segment/part requests (Python client in this process, {args.clients} tasks):")
        print(f"  {len(lat) / elapsed:,.0f} requests/s, {_ms(lat, 50, 99)}, errors {errors}")
    cpu = watch.delta(cpu0, watch.cpu())
    print(f"  server CPU {cpu['server'] / elapsed * 100:.0f}% of one core")


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1, help="concurrent publishers")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the window")
    parser.add_argument("--g2g-streams", type=int, default=2, help="streams followed over HLS")
    parser.add_argument("--publisher-processes", type=int, default=2)
    parser.add_argument("--video-only", action="store_true", help="publish no audio")
    parser.add_argument("--part-target", type=float, help="hls.part_target_s of the server")
    parser.add_argument(
        "--hlsjs", action="store_true",
        help="also play the first stream with hls.js in headless Chromium (glass to glass)",
    )  # fmt: skip
    parser.add_argument("--origin", action="store_true", help="measure the HLS origin instead")
    parser.add_argument("--clients", type=int, default=100, help="origin mode: concurrent clients")
    parser.add_argument("--client-processes", type=int, default=2, help="origin mode")
    parser.add_argument("--python-client", action="store_true", help="origin mode: not wrk")
    parser.add_argument(
        "--renditions",
        default="source",
        help="the server's hls.renditions ('' for livecore's default)",
    )
    parser.add_argument("--log-level", default="warning", help="server log level")
    parser.add_argument(
        "--processes", type=int, default=1,
        help="livecore serve --processes N (N > 1: a private redis-server, the edge between them)",
    )  # fmt: skip
    parser.add_argument("--py-spy", type=Path, help="ingest mode: profile the server into FILE")
    parser.add_argument("--gil", action="store_true", help="py-spy: only threads holding the GIL")
    parser.add_argument("--keep-log", type=Path, help="copy the server log here")
    args = parser.parse_args()
    if args.py_spy is not None:
        pyspy.check_installed()  # before anything starts
    args.seconds = max(1.0, min(args.seconds, MAX_SECONDS))
    args.warmup = max(0.0, min(args.warmup, 60.0))
    args.streams = max(1, min(args.streams, 200))
    args.clients = max(1, min(args.clients, 10_000))
    args.processes = max(1, min(args.processes, 8))

    paths = clip_files()
    clip = load_clip(paths)
    print(
        f"clip: {WIDTH}x{HEIGHT} {FPS} fps H.264 baseline, keyint {KEYINT}, "
        f"{clip.video_kbps:.0f} kb/s video + Opus, {len(clip.video) / FPS:.0f}s looped"
    )
    print(f"hls.renditions: {args.renditions or '(livecore default)'}")
    with tempfile.TemporaryDirectory(prefix="livecore-bench-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        env = {
            "LIVECORE_LOG_LEVEL": args.log_level,
            "LIVECORE_SFU__ICE_HOST_ADDRESSES": "127.0.0.1",
        }
        if args.renditions:
            env["LIVECORE_HLS__RENDITIONS"] = args.renditions
        if args.part_target:
            env["LIVECORE_HLS__PART_TARGET_S"] = str(args.part_target)
        if args.processes > 1:
            first = free_ports(args.processes)
            env["LIVECORE_PROCESSES"] = str(args.processes)
            env["LIVECORE_NODE__INTERNAL_PORT"] = str(first)
            METRICS_BASES[:] = [f"http://127.0.0.1:{first + i}" for i in range(args.processes)]
        print(f"server processes: {args.processes}")
        server = start_server(port, tmp / "var", tmp / "server.log", env=env,
                              also_ready=METRICS_BASES)  # fmt: skip
        watch = ProcessWatch(server.pid)
        watch.find_servers()
        base = f"http://127.0.0.1:{port}"
        try:
            run = _origin if args.origin else _ingest
            uvloop.run(run(args, base, server, watch))
        finally:
            stop_server(server)
            watch.end_orphans()
            print(f"server exit code after SIGTERM: {server.returncode}")
            summary = _log_summary(tmp / "server.log")
            print(f"server log: {len(summary)} kinds of warnings/errors")
            for line in summary[:12]:
                print(f"  {line}")
            if args.keep_log:
                shutil.copy(tmp / "server.log", args.keep_log)


if __name__ == "__main__":
    main()
