"""Reading the settings: dataclass defaults, `configs/livecore.toml`, the file given with
`--config`, then `LIVECORE_<KEY>` environment variables (`LIVECORE_<SECTION>__<KEY>` inside a
section), each overriding the one before. Secrets are read only from the environment. Every
value is cast to its field's type and checked against its bounds; every error names its key.

May import: config.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from livecore.config import Config, ConfigError

ENV_PREFIX = "LIVECORE_"
DEFAULT_CONFIG_FILE = Path(__file__).resolve().parent.parent / "configs" / "livecore.toml"


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    base_file: Path | None = DEFAULT_CONFIG_FILE,
) -> Config:
    """Build the Config from the default file, an optional file and the environment."""
    raw: dict[str, Any] = {}
    for file in (base_file, path):
        if file is None:
            continue
        if file is path or file.exists():
            _merge(raw, _read_toml(file))
    _merge(raw, _from_env(os.environ if environ is None else environ), from_env=True)
    config: Config = _build(Config, raw, prefix="")
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    _refuse_secrets(Config, data, prefix="", path=path)
    return data


def _refuse_secrets(cls: type, data: Mapping[str, Any], *, prefix: str, path: Path) -> None:
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        key = prefix + f.name
        if f.metadata.get("secret"):
            env = ENV_PREFIX + key.upper().replace(".", "__")
            raise ConfigError(f"{key}: secrets are read only from the environment ({env})")
        hint = _hints(cls)[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(data[f.name], Mapping):
            _refuse_secrets(hint, data[f.name], prefix=key + ".", path=path)  # type: ignore[arg-type]


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name.startswith(ENV_PREFIX + "TEST_"):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{'.'.join(parts)}: conflicts with another variable")
        node[parts[-1]] = value
    return out


def _merge(into: dict[str, Any], new: Mapping[str, Any], from_env: bool = False) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value, from_env)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type[Any], raw: Mapping[str, Any], *, prefix: str) -> Any:
    hints = _hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown setting")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name not in raw:
            continue
        key = prefix + name
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(raw[name], Mapping):
                raise ConfigError(f"{key}: must be a section")
            values[name] = _build(hint, raw[name], prefix=key + ".")  # type: ignore[arg-type]
            continue
        value = _cast(key, hint, raw[name])
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if lo is not None and value < lo:
            raise ConfigError(f"{key}: {value!r} is below the minimum {lo}")
        if hi is not None and value > hi:
            raise ConfigError(f"{key}: {value!r} is above the maximum {hi}")
        values[name] = value
    return cls(**values)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _cast(key: str, hint: Any, value: Any) -> Any:
    """Cast a TOML value or an environment string to the annotated type."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"{key}: {value!r} is not one of {allowed}")
        return value
    if origin in (tuple, list) or hint is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: {value!r} is not a list")
        (item,) = typing.get_args(hint)[:1] or (str,)
        return tuple(_cast(key, item, v) for v in value)
    if isinstance(hint, types.UnionType):
        raise ConfigError(f"{key}: union settings are not supported")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{key}: {value!r} is not a valid boolean (true/false)")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not a valid integer")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: {value!r} is not a valid integer") from None
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not a valid float")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: {value!r} is not a valid float") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: {value!r} is not a string")
        return value
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")
