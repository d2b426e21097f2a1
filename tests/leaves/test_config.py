from __future__ import annotations

from pathlib import Path

import pytest

from livecore.config import ConfigError
from livecore.configload import load_config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "extra.toml"
    path.write_text(text)
    return path


def test_shipped_defaults_load_without_configuration() -> None:
    config = load_config(environ={})
    assert (config.host, config.port) == ("127.0.0.1", 8080)
    assert config.database_url == ""
    assert config.auth.session_cache_s <= 5


def test_file_then_environment_override_in_that_order(tmp_path: Path) -> None:
    path = _write(tmp_path, "port = 9000\n[auth]\nlogin_window_s = 60\n")
    config = load_config(path, environ={"LIVECORE_AUTH__LOGIN_WINDOW_S": "30"})
    assert config.port == 9000
    assert config.auth.login_window_s == 30


def test_secrets_come_from_the_environment() -> None:
    config = load_config(environ={"LIVECORE_DATABASE_URL": "postgresql://db/x"})
    assert config.database_url == "postgresql://db/x"


def test_secret_in_a_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, 'database_url = "postgresql://u:pw@db/x"\n')
    with pytest.raises(ConfigError, match=r"^database_url: .*LIVECORE_DATABASE_URL"):
        load_config(path, environ={})


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^auth\.colour: unknown setting"):
        load_config(_write(tmp_path, "[auth]\ncolour = 1\n"), environ={})


def test_unknown_environment_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"^prot: unknown setting"):
        load_config(environ={"LIVECORE_PROT": "1"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIVECORE_PORT": "eighty"}, r"^port: 'eighty' is not a valid integer"),
        ({"LIVECORE_PORT": "70000"}, r"^port: 70000 is above the maximum 65535"),
        ({"LIVECORE_AUTH__SESSION_CACHE_S": "x"}, r"^auth\.session_cache_s: 'x' is not a valid"),
        ({"LIVECORE_AUTH__SESSION_CACHE_S": "9"}, r"^auth\.session_cache_s: 9.0 is above"),
        ({"LIVECORE_AUTH__SMTP_STARTTLS": "maybe"}, r"^auth\.smtp_starttls: 'maybe' is not a"),
        ({"LIVECORE_LOG_FORMAT": "xml"}, r"^log_format: 'xml' is not one of 'text', 'json'"),
        # RFC 8216bis: PART-HOLD-BACK at least twice the part target.
        ({"LIVECORE_HLS__PART_HOLD_BACK_PARTS": "1.5"}, r"^hls\.part_hold_back_parts: 1.5 is"),
    ],
)
def test_wrong_values_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(environ=env)


def test_booleans_are_parsed_explicitly() -> None:
    config = load_config(environ={"LIVECORE_AUTH__SMTP_STARTTLS": "off"})
    assert config.auth.smtp_starttls is False


def test_wrong_type_in_a_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^host: 5 is not a string"):
        load_config(_write(tmp_path, "host = 5\n"), environ={})


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml", environ={})


def test_production_example_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "configs" / "production.example.toml"
    config = load_config(example, environ={"LIVECORE_SECRET_KEY": "k" * 48})
    assert config.public_url.startswith("https://")
    assert config.secure_cookies


def test_object_storage_is_chosen_by_storage_kind() -> None:
    config = load_config(
        environ={
            "LIVECORE_STORAGE__KIND": "s3",
            "LIVECORE_STORAGE__BUCKET": "recordings",
            "LIVECORE_STORAGE__ENDPOINT_URL": "http://127.0.0.1:9000",
        }
    )
    assert (config.storage.kind, config.storage.bucket) == ("s3", "recordings")
    assert load_config(environ={}).storage.kind == "local"
    with pytest.raises(ConfigError, match=r"^storage\.bucket: required"):
        load_config(environ={"LIVECORE_STORAGE__KIND": "s3"})
    with pytest.raises(ConfigError, match=r"^storage\.endpoint_url: "):
        load_config(
            environ={
                "LIVECORE_STORAGE__KIND": "s3",
                "LIVECORE_STORAGE__BUCKET": "b",
                "LIVECORE_STORAGE__ENDPOINT_URL": "minio:9000",
            }
        )


def test_several_processes_refuse_one_internal_url_for_all() -> None:
    env = {"LIVECORE_PROCESSES": "2", "LIVECORE_NODE__INTERNAL_URL": "http://10.0.0.5:8080"}
    with pytest.raises(ConfigError, match=r"^node.internal_url: each of several processes"):
        load_config(environ=env)
    assert load_config(environ={"LIVECORE_PROCESSES": "2"}).processes == 2
    with pytest.raises(ConfigError, match=r"^processes: "):
        load_config(environ={"LIVECORE_PROCESSES": "0"})
