"""What the shipped configuration files and the README tell operators to set, through the
real loader: every example must start, and every environment variable named must exist."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from livecore.config import Config
from livecore.configload import ENV_PREFIX, load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILES = sorted((ROOT / "configs").glob("*.toml"))
# Where operators read variable names: the config files' comments and the README.
DOCUMENTS = [*CONFIG_FILES, ROOT / "README.md"]
# A whole name: patterns such as LIVECORE_<KEY> or LIVECORE_CHAT__* are not names.
_ENV_NAME = re.compile(r"\bLIVECORE_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_<*])")


def _mentioned_env_names() -> list[str]:
    names: set[str] = set()
    for path in DOCUMENTS:
        names.update(_ENV_NAME.findall(path.read_text("utf-8")))
    # The test suite's own variables (LIVECORE_TEST_*) are not settings; the loader skips them.
    return sorted(n for n in names if not n.startswith(ENV_PREFIX + "TEST_"))


def _example_value(name: str) -> str:
    """A value the setting accepts: its default, written as the environment writes it."""
    node: Any = Config()
    parts = name.removeprefix(ENV_PREFIX).lower().split("__")
    for part in parts:
        if not dataclasses.is_dataclass(node) or part not in {
            f.name for f in dataclasses.fields(node)
        }:
            return "x"  # no such setting: the loader must say so, and the test fails
        node = getattr(node, part)
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, tuple):
        return ",".join(node)
    return str(node) or "set-by-operator"


def test_every_documented_variable_is_found() -> None:
    names = _mentioned_env_names()
    # The README's table of secrets and Stripe's keys, at least, are picked up.
    assert {"LIVECORE_DATABASE_URL", "LIVECORE_STRIPE__SECRET_KEY"} <= set(names)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_shipped_config_file_loads(path: Path) -> None:
    load_config(path, environ={})


@pytest.mark.parametrize("name", _mentioned_env_names())
def test_documented_environment_variable_is_a_setting(name: str) -> None:
    load_config(environ={name: _example_value(name)})


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_variables_named_in_a_config_file_load_with_it(path: Path) -> None:
    # What an operator following the file's own comments does: the file plus its variables.
    names = sorted(set(_ENV_NAME.findall(path.read_text("utf-8"))))
    load_config(path, environ={name: _example_value(name) for name in names})
