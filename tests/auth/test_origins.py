"""Origins: how an Origin header is read, and which ones may use the session cookie."""

from __future__ import annotations

import pytest

from livecore.auth.origins import OriginPolicy, origin_of
from livecore.config import ConfigError
from livecore.configload import load_config


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Live.Example.com", "https://live.example.com"),
        ("https://live.example.com:443/watch/x?y=1", "https://live.example.com"),
        ("http://live.example.com:80", "http://live.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("null", None),
        ("file:///tmp/x.html", None),
        ("https://", None),
        ("http://x.example:99999", None),
        ("http://x.example:port", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_policy_takes_public_url_trusted_origins_and_this_host() -> None:
    policy = OriginPolicy("https://live.example.com", ["https://partner.example"])
    assert policy.allows_cookie("https://live.example.com", "node7.internal:8080")
    assert policy.allows_cookie("https://partner.example", "live.example.com")
    assert policy.allows_cookie("https://node7.example", "node7.example")
    assert policy.allows_cookie("https://node7.example", "node7.example:443")
    assert not policy.allows_cookie("https://evil.example", "live.example.com")
    assert not policy.allows_cookie("http://live.example.com", "live.example.com")
    assert not policy.allows_cookie("null", "live.example.com")
    assert not policy.allows_cookie("https://evil.example", None)
    assert policy.allows_cookie(None, "live.example.com")


def test_trusted_origins_come_from_the_environment_as_a_list() -> None:
    env = {"LIVECORE_TRUSTED_ORIGINS": "https://a.example, https://b.example:8443"}
    config = load_config(environ=env)
    assert config.trusted_origins == ("https://a.example", "https://b.example:8443")


@pytest.mark.parametrize(
    "value", ["a.example", "ftp://a.example", "https://a.example/path", "https://u@a.example"]
)
def test_trusted_origin_that_is_not_an_origin_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^trusted_origins: "):
        load_config(environ={"LIVECORE_TRUSTED_ORIGINS": value})
