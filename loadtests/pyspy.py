"""py-spy, the sampling profiler, for the benchmarks' --py-spy option: raw folded stacks of a
server process over most of the measured window. py-spy is not a livecore dependency; the
option says how to install it when it is missing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

PY_SPY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy"


def check_installed() -> None:
    if not PY_SPY.exists():
        raise SystemExit(f"--py-spy needs {PY_SPY} (pip install py-spy into the venv)")


async def start(
    pid: int, out: Path, *, seconds: float, rate: int, extra: Sequence[str] = ()
) -> asyncio.subprocess.Process:
    """Sample `pid` into `out` for all but the last 2 s of a `seconds` window."""
    check_installed()
    duration = max(1, int(seconds) - 2)
    return await asyncio.create_subprocess_exec(
        str(PY_SPY), "record", "-p", str(pid), "-d", str(duration), "-r", str(rate),
        "--nonblocking", *extra, "-f", "raw", "-o", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def wait(proc: asyncio.subprocess.Process) -> None:
    """Wait for the profile to be written (kill py-spy if it hangs)."""
    try:
        async with asyncio.timeout(30):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def finish(proc: asyncio.subprocess.Process | None, out: Path | None, what: str) -> None:
    """`wait`, then say where the profile is."""
    if proc is None:
        return
    await wait(proc)
    print(f"py-spy profile of {what} (raw folded stacks): {out}")
