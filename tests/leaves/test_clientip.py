from __future__ import annotations

import pytest

from livecore.clientip import client_address, parse_networks
from livecore.config import ConfigError
from livecore.configload import load_config
from tests.conftest import MakeClient

PROXIES = parse_networks(["10.0.0.0/8", "192.0.2.7"])


def test_no_trusted_proxies_means_the_direct_peer() -> None:
    assert client_address("203.0.113.5", "1.2.3.4", ()) == "203.0.113.5"


def test_header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_address("203.0.113.5", "1.2.3.4", PROXIES) == "203.0.113.5"


def test_trusted_proxy_reports_the_client() -> None:
    assert client_address("10.1.2.3", "198.51.100.9", PROXIES) == "198.51.100.9"


def test_spoofed_entries_left_of_the_real_client_are_skipped() -> None:
    # The client wrote "1.1.1.1" itself; our proxies appended the real address.
    header = "1.1.1.1, 198.51.100.9, 192.0.2.7"
    assert client_address("10.1.2.3", header, PROXIES) == "198.51.100.9"


def test_only_proxies_in_the_chain_falls_back_to_the_peer() -> None:
    assert client_address("10.1.2.3", "10.9.9.9, garbage", PROXIES) == "garbage"
    assert client_address("10.1.2.3", "10.9.9.9", PROXIES) == "10.1.2.3"


def test_bad_trusted_proxy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^trusted_proxies: 'nope' is not an address"):
        load_config(environ={"LIVECORE_TRUSTED_PROXIES": "10.0.0.0/8,nope"})


async def test_login_throttle_counts_the_forwarded_client(make_client: MakeClient) -> None:
    from dataclasses import replace

    from livecore.config import AuthConfig

    auth = replace(
        AuthConfig(argon2_time_cost=1, argon2_memory_kib=64, argon2_parallelism=1),
        login_ip_max_failures=2, login_max_failures=100,
    )  # fmt: skip
    client = await make_client(trusted_proxies=("127.0.0.1",), auth=auth)

    async def login(forwarded: str, n: int) -> int:
        resp = await client.post(
            "/api/v1/auth/login",
            json={"email": f"who{n}@example.com", "password": "wrong password!"},
            headers={"X-Forwarded-For": forwarded},
        )
        return resp.status

    assert [await login("198.51.100.1", i) for i in range(3)] == [401, 401, 429]
    assert await login("198.51.100.2", 9) == 401  # another client behind the same proxy
