"""Every failure is a JSON error body: bad bodies, unknown routes, wrong methods."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Client, MakeClient, bearer, register

JSON = {"Content-Type": "application/json"}
LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"


async def test_oversized_body_is_413_json(make_client: MakeClient) -> None:
    client = await make_client(max_body_bytes=2048)
    payload = json.dumps({"email": "ann@example.com", "password": "x" * 4096})
    resp = await client.post(LOGIN, data=payload, headers=JSON)
    assert resp.status == 413
    assert await resp.json() == {
        "error": {"code": "payload_too_large", "message": "request body is too large"}
    }


async def test_body_just_under_the_limit_is_read(make_client: MakeClient) -> None:
    client = await make_client(max_body_bytes=2048)
    payload = json.dumps({"email": "ann@example.com", "password": "x" * 1000})
    resp = await client.post(LOGIN, data=payload, headers=JSON)
    assert resp.status == 401


async def test_malformed_json_is_400(client: Client) -> None:
    resp = await client.post(LOGIN, data='{"email": "ann@example.com",', headers=JSON)
    assert resp.status == 400
    assert await resp.json() == {
        "error": {"code": "bad_request", "message": "request body is not valid JSON"}
    }


async def test_body_that_is_not_utf8_is_400(client: Client) -> None:
    resp = await client.post(LOGIN, data=b'{"email": "\xff\xfe"}', headers=JSON)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_request"


async def test_deeply_nested_json_is_400(client: Client) -> None:
    resp = await client.post(LOGIN, data="[" * 100_000 + "]" * 100_000, headers=JSON)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_request"


@pytest.mark.parametrize("payload", ["[1, 2]", '"text"', "42", "null", "true"])
async def test_json_that_is_not_an_object_is_400(client: Client, payload: str) -> None:
    resp = await client.post(LOGIN, data=payload, headers=JSON)
    assert resp.status == 400
    assert await resp.json() == {
        "error": {"code": "bad_request", "message": "request body must be a JSON object"}
    }


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_body_with_wrong_content_type_is_415(client: Client, content_type: str) -> None:
    resp = await client.post(
        LOGIN,
        data='{"email": "ann@example.com", "password": "x"}',
        headers={"Content-Type": content_type},
    )
    assert resp.status == 415
    assert await resp.json() == {
        "error": {
            "code": "unsupported_media_type",
            "message": "request body must be application/json",
        }
    }


async def test_json_with_charset_parameter_is_accepted(client: Client) -> None:
    resp = await client.post(
        LOGIN,
        data='{"email": "ann@example.com", "password": "x"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert resp.status == 401


async def test_wrong_field_types_are_422_naming_each_field(client: Client) -> None:
    resp = await client.post(
        REGISTER,
        json={"email": 42, "password": ["x"], "display_name": {"a": 1}, "creator": "yes"},
    )
    assert resp.status == 422
    assert await resp.json() == {
        "error": {
            "code": "invalid",
            "message": "invalid creator, display_name, email, password",
            "fields": {
                "email": "must be a string",
                "password": "must be a string",
                "display_name": "must be a string",
                "creator": "must be true or false",
            },
        }
    }


async def test_overlong_string_field_is_422(client: Client) -> None:
    resp = await client.post(LOGIN, json={"email": "a" * 255 + "@example.com", "password": "x"})
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"email": "must be at most 254 characters"}


async def test_null_field_counts_as_missing(client: Client) -> None:
    resp = await client.post(LOGIN, json={"email": None, "password": "x"})
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"email": "is required"}


async def test_empty_body_is_422_naming_the_required_fields(client: Client) -> None:
    resp = await client.post(LOGIN)
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {
        "email": "is required",
        "password": "is required",
    }


async def test_lone_surrogate_in_a_field_is_422(client: Client) -> None:
    payload = '{"email": "ann\\ud800@example.com", "password": "correct horse battery"}'
    resp = await client.post(LOGIN, data=payload, headers=JSON)
    assert resp.status == 422
    assert list((await resp.json())["error"]["fields"]) == ["email"]


async def test_nul_character_in_a_field_is_422(client: Client) -> None:
    resp = await client.post(LOGIN, json={"email": "ann\x00@example.com", "password": "x"})
    assert resp.status == 422
    assert list((await resp.json())["error"]["fields"]) == ["email"]


async def test_registering_with_a_lone_surrogate_in_the_password_is_422(client: Client) -> None:
    payload = (
        '{"email": "ann@example.com", "password": "correct horse \\udfff", "display_name": "Ann"}'
    )
    resp = await client.post(REGISTER, data=payload, headers=JSON)
    assert resp.status == 422
    assert list((await resp.json())["error"]["fields"]) == ["password"]


async def test_unknown_route_is_404_json(client: Client) -> None:
    resp = await client.get("/api/v1/nothing-here")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert await resp.json() == {"error": {"code": "not_found", "message": "Not Found"}}


async def test_wrong_method_is_405_json_with_allow_header(client: Client) -> None:
    resp = await client.get(LOGIN)
    assert resp.status == 405
    assert resp.content_type == "application/json"
    assert resp.headers["Allow"] == "POST"
    assert await resp.json() == {
        "error": {"code": "method_not_allowed", "message": "Method Not Allowed"}
    }


async def test_wrong_method_on_a_resource_lists_every_allowed_method(client: Client) -> None:
    resp = await client.put("/api/v1/streams/ann-live")
    assert resp.status == 405
    assert set(resp.headers["Allow"].split(",")) == {"GET", "PATCH", "DELETE", "HEAD"}


async def test_api_errors_carry_their_headers(client: Client) -> None:
    resp = await client.get("/api/v1/me")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_error_bodies_never_leak_a_session_token(client: Client) -> None:
    token = (await register(client))["token"]
    resp = await client.post(LOGIN, data="{", headers={**JSON, **bearer(token)})
    assert token not in await resp.text()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_does_not_decompress_is_400(client: Client, encoding: str) -> None:
    # aiohttp decompresses while the handler reads the body; a bad stream failed it there.
    headers = JSON | {"Content-Encoding": encoding}
    resp = await client.post(LOGIN, data=b"not compressed at all", headers=headers)
    assert resp.status == 400
    assert await resp.json() == {
        "error": {"code": "bad_request", "message": "the request body could not be read"}
    }
