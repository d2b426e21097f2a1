"""The benchmarks start with what `bin/run` installs: none of the test extras.

Only `bench_ingest --hlsjs` drives a browser and needs Playwright (and Chromium); every other
benchmark, and bench_ingest without it, must start where the test-only packages are missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "loadtests").glob("*.py") if p.stem != "__init__")
BENCHMARKS = [m for m in MODULES if m.startswith("bench_")]
# The test extras of pyproject.toml that livecore itself does not need. Importing a module
# that is None in sys.modules raises ImportError: as if it were not installed.
_TEST_ONLY = ("playwright", "pytest", "pytest_asyncio", "pytest_aiohttp", "hypothesis",
              "blockbuster")  # fmt: skip
_BLOCK = f"import sys; sys.modules.update(dict.fromkeys({_TEST_ONLY!r})); "


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCK + code],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_every_benchmark_is_checked() -> None:
    assert {"bench_api", "bench_chat", "bench_ingest", "bench_tips"} <= set(BENCHMARKS)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_without_test_extras(module: str) -> None:
    result = _python(f"import loadtests.{module}")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", BENCHMARKS)
def test_benchmark_help_works_without_test_extras(module: str) -> None:
    code = (
        "import runpy; sys.argv = ['bench', '--help']; "
        f"runpy.run_module('loadtests.{module}', run_name='__main__')"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
