"""GET /api/v1/streams?q=: find streams by title, slug or creator name; and what a listing
carries besides the streams (offline streams' newest recordings)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from livecore.store.streams import like_pattern
from livecore.streams.service import SEARCH_MAX_LEN
from tests.conftest import Client, bearer, register


async def _creator(client: Client, name: str) -> dict[str, str]:
    body = await register(client, f"{name.lower()}@example.com", creator=True, display_name=name)
    return bearer(body["token"])


async def _create(client: Client, headers: dict[str, str], slug: str, title: str = "") -> None:
    resp = await client.post(
        "/api/v1/streams", json={"slug": slug, "title": title}, headers=headers
    )
    assert resp.status == 201, await resp.text()


async def _found(client: Client, q: str, **params: str) -> list[str]:
    resp = await client.get("/api/v1/streams", params={"q": q, **params})
    assert resp.status == 200, await resp.text()
    return sorted(s["slug"] for s in (await resp.json())["streams"])


@pytest.fixture
async def shows(client: Client) -> Client:
    ann = await _creator(client, "Annabel")
    bob = await _creator(client, "Bob_Builder")
    await _create(client, ann, "ann-cooks", "Cooking with Ann: 100% butter")
    await _create(client, ann, "ann-games", "Retro games")
    await _create(client, bob, "bob-builds", "Building a shed")
    await _create(client, bob, "bob-talks", "Q&A")
    client.session.cookie_jar.clear()
    return client


async def test_search_finds_streams_by_title_case_insensitively(shows: Client) -> None:
    assert await _found(shows, "retro") == ["ann-games"]
    assert await _found(shows, "BUILDING") == ["bob-builds"]


async def test_search_finds_every_stream_of_a_creator_by_name(shows: Client) -> None:
    assert await _found(shows, "annabel") == ["ann-cooks", "ann-games"]


async def test_search_finds_streams_by_slug(shows: Client) -> None:
    assert await _found(shows, "bob-t") == ["bob-talks"]


async def test_search_treats_like_wildcards_as_the_characters_they_are(shows: Client) -> None:
    # "%" and "_" would match anything as LIKE wildcards; here only the text itself matches.
    assert await _found(shows, "%") == ["ann-cooks"]
    assert await _found(shows, "100%") == ["ann-cooks"]
    assert await _found(shows, "_") == ["bob-builds", "bob-talks"]  # the name Bob_Builder
    assert await _found(shows, "b_b") == ["bob-builds", "bob-talks"]
    assert await _found(shows, "a_n") == []
    assert await _found(shows, "\\") == []
    assert await _found(shows, "\\%") == []


async def test_search_with_no_match_is_an_empty_list(shows: Client) -> None:
    assert await _found(shows, "nothing like this") == []


async def test_blank_search_lists_everything(shows: Client) -> None:
    assert len(await _found(shows, "   ")) == 4


async def test_search_combines_with_the_state_filter(shows: Client, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE streams SET state = 'live', started_at = now() WHERE slug = 'ann-games'"
        )
    finally:
        await conn.close()
    assert await _found(shows, "ann", state="live") == ["ann-games"]
    assert await _found(shows, "ann", state="offline") == ["ann-cooks"]


async def test_search_longer_than_any_title_is_refused(shows: Client) -> None:
    assert len(await _found(shows, "a" * SEARCH_MAX_LEN)) == 0
    resp = await shows.get("/api/v1/streams", params={"q": "a" * (SEARCH_MAX_LEN + 1)})
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {
        "q": f"must be at most {SEARCH_MAX_LEN} characters"
    }
    # As long as aiohttp takes a request line (8190 bytes): refused without a query.
    resp = await shows.get("/api/v1/streams", params={"q": "%" * 2700})
    assert resp.status == 422


@pytest.mark.parametrize("text", ["a\x00b", "\x1b[31m", "a\u202eb"])
async def test_search_with_control_characters_is_refused(shows: Client, text: str) -> None:
    resp = await shows.get("/api/v1/streams", params={"q": text})
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"q": "must not contain control characters"}


async def test_search_sees_a_new_stream_at_once(shows: Client) -> None:
    assert await _found(shows, "garden") == []
    await _create(shows, await _creator(shows, "Gardener"), "garden-live", "Garden")
    assert await _found(shows, "garden") == ["garden-live"]


def test_like_pattern_escapes_the_escape_character_first() -> None:
    assert like_pattern("a%b_c\\d") == "%a\\%b\\_c\\\\d%"


# -- what listings carry ---------------------------------------------------------------------


async def _broadcast(
    conn: asyncpg.Connection, slug: str, minutes_ago: int, *, kept: bool = True
) -> int:
    value = await conn.fetchval(
        "INSERT INTO broadcasts (stream_id, started_at, ended_at, recording_path,"
        " recording_ready, recording_bytes)"
        " SELECT id, now() - make_interval(mins => $2), now() - make_interval(mins => $2 - 1),"
        " 'rec/' || $2, $3, CASE WHEN $3 THEN 1000 ELSE 0 END"
        " FROM streams WHERE slug = $1 RETURNING id",
        slug,
        minutes_ago,
        kept,
    )
    return int(value)


async def _listed(client: Client, **params: str) -> dict[str, dict[str, Any]]:
    resp = await client.get("/api/v1/streams", params=params)
    assert resp.status == 200, await resp.text()
    return {s["slug"]: s for s in (await resp.json())["streams"]}


async def test_offline_streams_are_listed_with_their_newest_three_recordings(
    shows: Client, dsn: str
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        ids = [await _broadcast(conn, "ann-cooks", m) for m in (50, 40, 30, 20)]
        await _broadcast(conn, "ann-cooks", 10, kept=False)  # not a listed recording
        other = await _broadcast(conn, "bob-talks", 5)
        await conn.execute(
            "UPDATE streams SET state = 'live', started_at = now() WHERE slug = 'bob-builds'"
        )
    finally:
        await conn.close()
    listed = await _listed(shows, state="offline")
    newest_first = [r["id"] for r in listed["ann-cooks"]["recordings"]]
    assert newest_first == [ids[3], ids[2], ids[1]]
    assert listed["ann-cooks"]["recordings"][0]["url"] == f"/vod/{ids[3]}/vod.m3u8"
    assert [r["id"] for r in listed["bob-talks"]["recordings"]] == [other]
    assert listed["ann-games"]["recordings"] == []
    live = await _listed(shows, state="live")
    assert "recordings" not in live["bob-builds"]
    assert live["bob-builds"]["viewers"] == 0


# -- revalidation ----------------------------------------------------------------------------


async def test_an_unchanged_listing_is_revalidated_with_a_304(shows: Client) -> None:
    for params in ({"state": "offline"}, {"q": "ann"}):
        first = await shows.get("/api/v1/streams", params=params)
        etag = first.headers["ETag"]
        assert first.headers["Cache-Control"] == "no-cache"
        again = await shows.get("/api/v1/streams", params=params, headers={"If-None-Match": etag})
        assert again.status == 304
        assert await again.read() == b""
        assert again.headers["ETag"] == etag


async def test_a_changed_listing_has_a_new_etag(shows: Client) -> None:
    first = await shows.get("/api/v1/streams")
    await _create(shows, await _creator(shows, "Gardener"), "garden-live", "Garden")
    shows.session.cookie_jar.clear()
    again = await shows.get("/api/v1/streams", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 200
    assert again.headers["ETag"] != first.headers["ETag"]
    assert "garden-live" in [s["slug"] for s in (await again.json())["streams"]]


async def test_ones_own_listing_is_private_to_the_browser(client: Client) -> None:
    headers = await _creator(client, "Ann")
    resp = await client.get("/api/v1/streams", params={"owner": "me"}, headers=headers)
    assert resp.headers["Cache-Control"] == "private, no-cache"
    assert resp.headers["Vary"] == "Cookie, Authorization"
