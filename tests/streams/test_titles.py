"""Stream titles follow the chat's text rules: no bidi controls, not invisible only."""

from __future__ import annotations

import pytest

from tests.conftest import Client, bearer, register

CONTROL_CHARACTERS = "must not contain control characters"
INVISIBLE = "must contain a visible character (or be empty)"
# Bidi embeddings, overrides and isolates, and a line separator: each reorders or breaks
# the page around the title.
BIDI = ["\u202eevil", "a\u202ab", "a\u202bb", "a\u202db", "a\u2066b", "a\u2067b", "a\u2068b",
        "a\u2069b", "a\u202cb", "a\u2028b"]  # fmt: skip
# Only blank letters (Hangul fillers, blank braille), zero-width or combining characters.
BLANK = ["\u3164", "\u2800\u2800", "\u115f\u1160", "\uffa0", "\u200b", " \u0301 ", "\u3164 \u3164"]


async def _creator(client: Client) -> dict[str, str]:
    return bearer((await register(client, "ann@example.com", creator=True))["token"])


@pytest.mark.parametrize("title", BIDI + BLANK)
async def test_create_refuses_the_title(client: Client, title: str) -> None:
    resp = await client.post(
        "/api/v1/streams", json={"slug": "ann-live", "title": title}, headers=await _creator(client)
    )
    assert resp.status == 422, repr(title)
    problem = CONTROL_CHARACTERS if title in BIDI else INVISIBLE
    assert (await resp.json())["error"]["fields"] == {"title": problem}


@pytest.mark.parametrize("title", ["\u202eevil", "\u3164"])
async def test_patch_refuses_the_title(client: Client, title: str) -> None:
    headers = await _creator(client)
    resp = await client.post("/api/v1/streams", json={"slug": "ann-live"}, headers=headers)
    assert resp.status == 201
    resp = await client.patch("/api/v1/streams/ann-live", json={"title": title}, headers=headers)
    assert resp.status == 422
    resp = await client.get("/api/v1/streams/ann-live")
    assert (await resp.json())["stream"]["title"] == ""


@pytest.mark.parametrize("title", ["", "Friday stream", "שלום עולם", "مرحبا", "👩‍💻 coding"])
async def test_create_keeps_ordinary_titles(client: Client, title: str) -> None:
    resp = await client.post(
        "/api/v1/streams", json={"slug": "ann-live", "title": title}, headers=await _creator(client)
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["stream"]["title"] == title
