"""The local disk behind the recordings' storage seam, and the writer on top of it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from livecore.hls.state import Part, Segment
from livecore.recordings.layout import VOD_PLAYLIST
from livecore.recordings.playlist import RecordingPlaylist
from livecore.recordings.sink import DiskSink
from livecore.recordings.storage import LocalDisk, StoredObject
from livecore.recordings.writer import RecordingWriter, WriteFailed


def _segment(msn: int, parts: int) -> Segment:
    return Segment(
        msn=msn, init=0, discontinuity=False, program_date_time=1.7e9 + 2 * msn,
        parts=tuple(Part(msn, i, 0.5, i == 0, 10) for i in range(parts)), complete=True,
    )  # fmt: skip


def _write(directory: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)


async def test_local_disk_lists_reads_and_deletes_a_recording(tmp_path: Path) -> None:
    path = "recordings/7/a"
    files = {VOD_PLAYLIST: b"#EXTM3U\n", "seg-1.m4s": b"12345", "360p/seg-1.m4s": b"123"}
    await asyncio.to_thread(_write, tmp_path / path, {**files, ".seg-2.m4s.tmp": b"half"})
    disk = LocalDisk(tmp_path)
    assert await disk.holds(path)
    listed = await disk.objects(path)
    assert listed is not None
    assert sorted(listed, key=lambda o: o.name) == [
        StoredObject("360p/seg-1.m4s", 3), StoredObject("seg-1.m4s", 5),
        StoredObject(VOD_PLAYLIST, 8),
    ]  # fmt: skip
    assert await disk.read(path, "seg-1.m4s") == b"12345"
    with pytest.raises(FileNotFoundError):
        await disk.read(path, "seg-9.m4s")
    assert await disk.delete(path)
    assert not await disk.holds(path)
    assert not await disk.delete(path)  # gone: nothing more to delete


async def test_local_disk_holds_nothing_outside_its_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await asyncio.to_thread(_write, tmp_path / "elsewhere", {"seg-1.m4s": b"x"})
    disk = LocalDisk(data)
    for path in ("", "../elsewhere", str(tmp_path / "elsewhere"), "recordings/1/missing"):
        assert not await disk.holds(path), path
        assert await disk.objects(path) is None, path
        assert not await disk.delete(path), path
    assert await asyncio.to_thread((tmp_path / "elsewhere/seg-1.m4s").exists)


def test_writer_keeps_the_parts_of_the_live_window_only(tmp_path: Path) -> None:
    writer = RecordingWriter(
        DiskSink(tmp_path / "rec"), segment_target_s=1.0, parts_kept=2, label="demo"
    )
    writer.open()
    writer.write_init(0, b"init")
    for msn in range(4):
        for index in range(2):
            writer.write_part(msn, index, b"part")
        segment = _segment(msn, 2)
        writer.write_segment(segment, b"partpart")
        writer.record(segment, 2)
    names = sorted(p.name for p in (tmp_path / "rec").iterdir())
    assert names == [
        "init-0.mp4", "part-2-0.m4s", "part-2-1.m4s", "part-3-0.m4s", "part-3-1.m4s",
        "seg-0.m4s", "seg-1.m4s", "seg-2.m4s", "seg-3.m4s", VOD_PLAYLIST,
    ]  # fmt: skip
    assert (tmp_path / "rec" / VOD_PLAYLIST).read_text().count("#EXTINF") == 4
    writer.finish(parts_kept=0)
    assert not list((tmp_path / "rec").glob("part-*"))


def test_a_refused_write_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "rec").write_bytes(b"a file where the directory should be")
    writer = RecordingWriter(
        DiskSink(tmp_path / "rec"), segment_target_s=1.0, parts_kept=2, label="demo"
    )
    with pytest.raises(WriteFailed, match=r"init-0\.mp4"):
        writer.write_init(0, b"init")


def test_a_resumed_vod_playlist_renders_as_if_written_in_one_go() -> None:
    """A writer whose process died leaves its VOD playlist; the next one reads it back and
    goes on, and the result is what one writer would have written."""
    segments = [
        _segment(5, 2),
        replace(_segment(6, 2), init=1, discontinuity=True),
        _segment(7, 1),  # init 0 again: the map is repeated
        replace(_segment(8, 3), init=2, discontinuity=True),
    ]
    for cut in range(1, len(segments)):
        whole = RecordingPlaylist(2.0)
        for seg in segments:
            whole.add(seg)
        before = RecordingPlaylist(2.0)
        for seg in segments[:cut]:
            before.add(seg)
        resumed = RecordingPlaylist.resumed(before.render(), 2.0)
        assert resumed.has(segments[cut - 1].msn) and not resumed.has(segments[cut].msn)
        for seg in segments[cut:]:
            resumed.add(seg)
        assert resumed.render() == whole.render(), cut
    empty = RecordingPlaylist.resumed(RecordingPlaylist(2.0).render(), 2.0)
    assert empty.empty and not empty.has(0)


def test_a_resumed_writer_lists_the_segment_whose_listing_was_cut_short(tmp_path: Path) -> None:
    sink = DiskSink(tmp_path / "rec")
    first = RecordingWriter(sink, segment_target_s=2.0, parts_kept=2, label="demo")
    first.open()
    for msn in (1, 2):
        first.write_segment(_segment(msn, 2), b"x")
        first.record(_segment(msn, 2), 2)
    first.write_segment(_segment(3, 2), b"x")  # its process dies before listing it
    second = RecordingWriter(sink, segment_target_s=2.0, parts_kept=2, label="demo")
    second.resume([(1, 2), (2, 2), (3, 2)], _segment(3, 2))
    text = (tmp_path / "rec" / VOD_PLAYLIST).read_text()
    assert [line for line in text.splitlines() if line.startswith("seg-")] == [
        "seg-1.m4s", "seg-2.m4s", "seg-3.m4s",
    ]  # fmt: skip
    second.resume([], _segment(3, 2))  # already listed: not twice
    assert (tmp_path / "rec" / VOD_PLAYLIST).read_text() == text
