"""/api/v1/streams: create, read, list, edit, delete, rotate keys, and who may do which."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from livecore.appkeys import AUTH, CONFIG
from livecore.auth.tokens import hash_secret
from tests.conftest import Client, bearer, register

PASSWORD = "correct horse battery"
CONTROL_CHARACTERS = "must not contain control characters"


async def fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def creator(client: Client, email: str = "ann@example.com") -> dict[str, str]:
    """Register a creator; returns bearer headers for them."""
    body = await register(client, email, creator=True, display_name=email.split("@")[0])
    return bearer(body["token"])


async def admin(client: Client, dsn: str) -> dict[str, str]:
    await register(client, "root@example.com")
    await fetch(dsn, "UPDATE users SET role = 'admin' WHERE email = 'root@example.com'")
    resp = await client.post(
        "/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD}
    )
    body = await resp.json()
    assert body["user"]["role"] == "admin"
    return bearer(body["token"])


async def create(
    client: Client, headers: dict[str, str], slug: str = "ann-live", **fields: Any
) -> dict[str, Any]:
    resp = await client.post("/api/v1/streams", json={"slug": slug, **fields}, headers=headers)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def set_live(dsn: str, slug: str) -> None:
    await fetch(dsn, "UPDATE streams SET state = 'live', started_at = now() WHERE slug = $1", slug)


async def slugs(client: Client, **params: str) -> list[str]:
    resp = await client.get("/api/v1/streams", params=params)
    assert resp.status == 200, await resp.text()
    return [s["slug"] for s in (await resp.json())["streams"]]


# -- create ----------------------------------------------------------------------------------


async def test_create_answers_201_with_location_and_the_stream(client: Client) -> None:
    headers = await creator(client)
    resp = await client.post(
        "/api/v1/streams",
        json={"slug": "ann-live", "title": "Ann live", "visibility": "subscribers"},
        headers=headers,
    )
    assert resp.status == 201
    assert resp.headers["Location"] == "/api/v1/streams/ann-live"
    stream = (await resp.json())["stream"]
    assert stream["slug"] == "ann-live"
    assert stream["title"] == "Ann live"
    assert stream["visibility"] == "subscribers"
    assert stream["state"] == "offline"
    assert stream["owner"]["display_name"] == "ann"
    assert stream["started_at"] is None


async def test_create_returns_a_stream_key_that_resolves(client: Client) -> None:
    body = await create(client, await creator(client))
    key = body["stream_key"]
    assert key.startswith("lck_")
    stream = await client.app[AUTH].stream_for_key("ann-live", key)
    assert stream is not None
    assert stream.id == body["stream"]["id"]


async def test_stream_key_is_shown_only_at_creation(client: Client) -> None:
    body = await create(client, await creator(client))
    resp = await client.get("/api/v1/streams/ann-live")
    text = await resp.text()
    assert "stream_key" not in text
    assert body["stream_key"] not in text


async def test_create_defaults_to_public_with_an_empty_title(client: Client) -> None:
    stream = (await create(client, await creator(client)))["stream"]
    assert stream["visibility"] == "public"
    assert stream["title"] == ""


async def test_viewer_cannot_create_a_stream(client: Client) -> None:
    viewer = bearer((await register(client, "vic@example.com"))["token"])
    resp = await client.post("/api/v1/streams", json={"slug": "vic-live"}, headers=viewer)
    assert resp.status == 403
    assert await resp.json() == {
        "error": {"code": "forbidden", "message": "only creators can create streams"}
    }


async def test_create_requires_authentication(client: Client) -> None:
    resp = await client.post("/api/v1/streams", json={"slug": "ann-live"})
    assert resp.status == 401


async def test_admin_can_create_a_stream(client: Client, dsn: str) -> None:
    body = await create(client, await admin(client, dsn), "root-live")
    assert body["stream"]["slug"] == "root-live"


@pytest.mark.parametrize(
    "slug",
    ["Ann-Live", "ab", "-ann", "ann-", "ann_live", "ann live", "a" * 41, "ännlive", ""],
)
async def test_create_refuses_a_malformed_slug(client: Client, slug: str) -> None:
    resp = await client.post("/api/v1/streams", json={"slug": slug}, headers=await creator(client))
    assert resp.status == 422
    body = await resp.json()
    assert body["error"]["code"] == "invalid"
    assert list(body["error"]["fields"]) == ["slug"]


@pytest.mark.parametrize("slug", ["admin", "api", "live", "hls"])
async def test_create_refuses_a_reserved_slug(client: Client, slug: str) -> None:
    resp = await client.post("/api/v1/streams", json={"slug": slug}, headers=await creator(client))
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"slug": "is reserved"}


async def test_create_accepts_the_longest_allowed_slug(client: Client) -> None:
    body = await create(client, await creator(client), "a" * 40)
    assert body["stream"]["slug"] == "a" * 40


async def test_create_refuses_a_missing_slug(client: Client) -> None:
    resp = await client.post("/api/v1/streams", json={}, headers=await creator(client))
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"slug": "is required"}


async def test_create_refuses_a_duplicate_slug(client: Client) -> None:
    await create(client, await creator(client))
    other = await creator(client, "bob@example.com")
    resp = await client.post("/api/v1/streams", json={"slug": "ann-live"}, headers=other)
    assert resp.status == 409
    assert await resp.json() == {
        "error": {"code": "conflict", "message": "a stream with this slug exists already"}
    }


async def test_create_refuses_an_unknown_visibility(client: Client) -> None:
    resp = await client.post(
        "/api/v1/streams",
        json={"slug": "ann-live", "visibility": "secret"},
        headers=await creator(client),
    )
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {
        "visibility": "must be one of public, subscribers"
    }


async def test_create_refuses_a_title_over_140_characters(client: Client) -> None:
    resp = await client.post(
        "/api/v1/streams",
        json={"slug": "ann-live", "title": "x" * 141},
        headers=await creator(client),
    )
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"title": "must be at most 140 characters"}


async def test_create_refuses_a_title_with_control_characters(client: Client) -> None:
    resp = await client.post(
        "/api/v1/streams",
        json={"slug": "ann-live", "title": "a\x1bb"},
        headers=await creator(client),
    )
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"title": CONTROL_CHARACTERS}


async def test_create_writes_an_audit_entry(client: Client, dsn: str) -> None:
    body = await create(client, await creator(client))
    rows = await fetch(
        dsn,
        "SELECT action, actor_id FROM audit_log WHERE target_type = 'stream' AND target_id = $1",
        str(body["stream"]["id"]),
    )
    assert [(r["action"], r["actor_id"]) for r in rows] == [
        ("stream.create", body["stream"]["owner"]["id"])
    ]


# -- read and list ---------------------------------------------------------------------------


async def test_get_by_slug_returns_the_stream(client: Client) -> None:
    created = await create(client, await creator(client), title="Hello")
    client.session.cookie_jar.clear()
    resp = await client.get("/api/v1/streams/ann-live")
    assert resp.status == 200
    assert (await resp.json())["stream"] == created["stream"]


async def test_get_unknown_slug_is_404(client: Client) -> None:
    resp = await client.get("/api/v1/streams/nobody-here")
    assert resp.status == 404
    assert await resp.json() == {"error": {"code": "not_found", "message": "no such stream"}}


async def test_get_malformed_slug_is_404(client: Client) -> None:
    await create(client, await creator(client))
    resp = await client.get("/api/v1/streams/ANN-LIVE")
    assert resp.status == 404


async def test_list_returns_every_stream_without_filters(client: Client) -> None:
    headers = await creator(client)
    await create(client, headers, "first")
    await create(client, headers, "second")
    client.session.cookie_jar.clear()
    assert sorted(await slugs(client)) == ["first", "second"]


async def test_list_with_state_live_returns_only_live_streams(client: Client, dsn: str) -> None:
    headers = await creator(client)
    await create(client, headers, "on-air")
    await create(client, headers, "off-air")
    await set_live(dsn, "on-air")
    assert await slugs(client, state="live") == ["on-air"]


async def test_list_with_state_offline_returns_only_offline_streams(
    client: Client, dsn: str
) -> None:
    headers = await creator(client)
    await create(client, headers, "on-air")
    await create(client, headers, "off-air")
    await set_live(dsn, "on-air")
    assert await slugs(client, state="offline") == ["off-air"]


async def test_live_stream_shows_its_state_and_start_time(client: Client, dsn: str) -> None:
    await create(client, await creator(client))
    await set_live(dsn, "ann-live")
    stream = (await (await client.get("/api/v1/streams/ann-live")).json())["stream"]
    assert stream["state"] == "live"
    assert stream["started_at"] is not None


async def test_list_with_unknown_state_is_invalid(client: Client) -> None:
    resp = await client.get("/api/v1/streams", params={"state": "bogus"})
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"state": "must be one of live, offline"}


async def test_list_of_own_streams_requires_authentication(client: Client) -> None:
    await create(client, await creator(client))
    client.session.cookie_jar.clear()
    resp = await client.get("/api/v1/streams", params={"owner": "me"})
    assert resp.status == 401


async def test_list_of_own_streams_returns_only_the_callers(client: Client) -> None:
    ann = await creator(client)
    bob = await creator(client, "bob@example.com")
    await create(client, ann, "ann-live")
    await create(client, bob, "bob-live")
    resp = await client.get("/api/v1/streams", params={"owner": "me"}, headers=bob)
    assert [s["slug"] for s in (await resp.json())["streams"]] == ["bob-live"]


async def test_list_with_another_owner_value_is_invalid(client: Client) -> None:
    resp = await client.get("/api/v1/streams", params={"owner": "42"})
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"owner": "must be me"}


# -- edit ------------------------------------------------------------------------------------


async def test_owner_can_change_the_title(client: Client) -> None:
    headers = await creator(client)
    await create(client, headers, title="Old")
    resp = await client.patch("/api/v1/streams/ann-live", json={"title": "New"}, headers=headers)
    assert resp.status == 200
    assert (await resp.json())["stream"]["title"] == "New"
    stream = (await (await client.get("/api/v1/streams/ann-live")).json())["stream"]
    assert stream["title"] == "New"


async def test_owner_can_change_the_visibility_and_the_title_stays(client: Client) -> None:
    headers = await creator(client)
    await create(client, headers, title="Keep me")
    resp = await client.patch(
        "/api/v1/streams/ann-live", json={"visibility": "subscribers"}, headers=headers
    )
    stream = (await resp.json())["stream"]
    assert stream["visibility"] == "subscribers"
    assert stream["title"] == "Keep me"


async def test_patch_refuses_an_unknown_visibility(client: Client) -> None:
    headers = await creator(client)
    await create(client, headers)
    resp = await client.patch(
        "/api/v1/streams/ann-live", json={"visibility": "everyone"}, headers=headers
    )
    assert resp.status == 422
    assert list((await resp.json())["error"]["fields"]) == ["visibility"]


async def test_patch_refuses_a_title_with_control_characters(client: Client) -> None:
    headers = await creator(client)
    await create(client, headers)
    resp = await client.patch("/api/v1/streams/ann-live", json={"title": "a\nb"}, headers=headers)
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"title": CONTROL_CHARACTERS}


async def test_patch_of_an_unknown_stream_is_404(client: Client) -> None:
    resp = await client.patch(
        "/api/v1/streams/nobody-here", json={"title": "x"}, headers=await creator(client)
    )
    assert resp.status == 404


async def test_patch_requires_authentication(client: Client) -> None:
    await create(client, await creator(client))
    client.session.cookie_jar.clear()
    resp = await client.patch("/api/v1/streams/ann-live", json={"title": "x"})
    assert resp.status == 401


async def test_creator_cannot_patch_another_creators_stream(client: Client) -> None:
    await create(client, await creator(client), title="Ann's")
    bob = await creator(client, "bob@example.com")
    resp = await client.patch("/api/v1/streams/ann-live", json={"title": "Bob's"}, headers=bob)
    assert resp.status == 403
    assert await resp.json() == {
        "error": {"code": "forbidden", "message": "only the stream's owner or an admin may do this"}
    }
    stream = (await (await client.get("/api/v1/streams/ann-live")).json())["stream"]
    assert stream["title"] == "Ann's"


async def test_admin_can_patch_another_users_stream(client: Client, dsn: str) -> None:
    await create(client, await creator(client))
    resp = await client.patch(
        "/api/v1/streams/ann-live", json={"title": "moderated"}, headers=await admin(client, dsn)
    )
    assert resp.status == 200
    assert (await resp.json())["stream"]["title"] == "moderated"


# -- delete ----------------------------------------------------------------------------------


async def test_delete_answers_204_and_the_stream_is_gone(client: Client) -> None:
    headers = await creator(client)
    await create(client, headers)
    resp = await client.delete("/api/v1/streams/ann-live", headers=headers)
    assert resp.status == 204
    assert (await client.get("/api/v1/streams/ann-live")).status == 404


async def test_delete_twice_is_404_the_second_time(client: Client) -> None:
    headers = await creator(client)
    await create(client, headers)
    await client.delete("/api/v1/streams/ann-live", headers=headers)
    resp = await client.delete("/api/v1/streams/ann-live", headers=headers)
    assert resp.status == 404


async def test_deleted_slug_can_be_used_again(client: Client) -> None:
    headers = await creator(client)
    await create(client, headers)
    await client.delete("/api/v1/streams/ann-live", headers=headers)
    await create(client, headers)


async def test_delete_of_a_live_stream_is_a_conflict(client: Client, dsn: str) -> None:
    headers = await creator(client)
    await create(client, headers)
    await set_live(dsn, "ann-live")
    resp = await client.delete("/api/v1/streams/ann-live", headers=headers)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "conflict"
    assert (await client.get("/api/v1/streams/ann-live")).status == 200


async def test_creator_cannot_delete_another_creators_stream(client: Client) -> None:
    await create(client, await creator(client))
    bob = await creator(client, "bob@example.com")
    resp = await client.delete("/api/v1/streams/ann-live", headers=bob)
    assert resp.status == 403
    assert (await client.get("/api/v1/streams/ann-live")).status == 200


async def test_admin_can_delete_another_users_stream(client: Client, dsn: str) -> None:
    await create(client, await creator(client))
    resp = await client.delete("/api/v1/streams/ann-live", headers=await admin(client, dsn))
    assert resp.status == 204


async def test_delete_requires_authentication(client: Client) -> None:
    await create(client, await creator(client))
    client.session.cookie_jar.clear()
    resp = await client.delete("/api/v1/streams/ann-live")
    assert resp.status == 401


async def test_delete_writes_an_audit_entry(client: Client, dsn: str) -> None:
    headers = await creator(client)
    stream = (await create(client, headers))["stream"]
    await client.delete("/api/v1/streams/ann-live", headers=headers)
    rows = await fetch(
        dsn,
        "SELECT details FROM audit_log WHERE action = 'stream.delete' AND target_id = $1",
        str(stream["id"]),
    )
    assert [json.loads(r["details"]) for r in rows] == [{"slug": "ann-live"}]


# -- stream keys -----------------------------------------------------------------------------


async def test_rotate_key_returns_a_new_key(client: Client) -> None:
    headers = await creator(client)
    old = (await create(client, headers))["stream_key"]
    resp = await client.post("/api/v1/streams/ann-live/key", headers=headers)
    assert resp.status == 200
    new = (await resp.json())["stream_key"]
    assert new.startswith("lck_")
    assert new != old


async def test_rotated_key_replaces_the_old_one(client: Client) -> None:
    headers = await creator(client)
    old = (await create(client, headers))["stream_key"]
    resp = await client.post("/api/v1/streams/ann-live/key", headers=headers)
    new = (await resp.json())["stream_key"]
    auth = client.app[AUTH]
    assert await auth.stream_for_key("ann-live", old) is None
    assert await auth.stream_for_key("ann-live", new) is not None


async def test_stream_key_does_not_resolve_for_another_stream(client: Client) -> None:
    headers = await creator(client)
    key = (await create(client, headers))["stream_key"]
    await create(client, headers, "ann-other")
    assert await client.app[AUTH].stream_for_key("ann-other", key) is None


async def test_rotation_leaves_exactly_one_active_key(client: Client, dsn: str) -> None:
    headers = await creator(client)
    await create(client, headers)
    await client.post("/api/v1/streams/ann-live/key", headers=headers)
    await client.post("/api/v1/streams/ann-live/key", headers=headers)
    rows = await fetch(dsn, "SELECT revoked_at FROM stream_keys")
    assert len(rows) == 3
    assert sum(r["revoked_at"] is None for r in rows) == 1


async def test_stream_keys_are_stored_only_as_hashes(client: Client, dsn: str) -> None:
    headers = await creator(client)
    first = (await create(client, headers))["stream_key"]
    resp = await client.post("/api/v1/streams/ann-live/key", headers=headers)
    second = (await resp.json())["stream_key"]
    rows = await fetch(dsn, "SELECT key_hash, revoked_at FROM stream_keys ORDER BY id")
    stored = [bytes(r["key_hash"]) for r in rows]
    assert stored == [hash_secret(first), hash_secret(second)]
    for key in (first, second):
        assert all(key.encode() not in value for value in stored)
        assert all(key.removeprefix("lck_").encode() not in value for value in stored)


async def test_stream_key_appears_in_no_table(client: Client, dsn: str) -> None:
    headers = await creator(client)
    key = (await create(client, headers))["stream_key"]
    resp = await client.post("/api/v1/streams/ann-live/key", headers=headers)
    new_key = (await resp.json())["stream_key"]
    for table in ("streams", "stream_keys", "audit_log", "users", "sessions"):
        rows = await fetch(dsn, f"SELECT t::text AS row FROM {table} t")
        for row in rows:
            assert key not in row["row"], table
            assert new_key not in row["row"], table


async def test_creator_cannot_rotate_another_creators_key(client: Client) -> None:
    old = (await create(client, await creator(client)))["stream_key"]
    bob = await creator(client, "bob@example.com")
    resp = await client.post("/api/v1/streams/ann-live/key", headers=bob)
    assert resp.status == 403
    assert await client.app[AUTH].stream_for_key("ann-live", old) is not None


async def test_viewer_cannot_rotate_a_key(client: Client) -> None:
    await create(client, await creator(client))
    viewer = bearer((await register(client, "vic@example.com"))["token"])
    resp = await client.post("/api/v1/streams/ann-live/key", headers=viewer)
    assert resp.status == 403


async def test_admin_can_rotate_another_users_key(client: Client, dsn: str) -> None:
    old = (await create(client, await creator(client)))["stream_key"]
    resp = await client.post("/api/v1/streams/ann-live/key", headers=await admin(client, dsn))
    assert resp.status == 200
    new = (await resp.json())["stream_key"]
    assert await client.app[AUTH].stream_for_key("ann-live", old) is None
    assert await client.app[AUTH].stream_for_key("ann-live", new) is not None


async def test_rotate_key_of_an_unknown_stream_is_404(client: Client) -> None:
    resp = await client.post("/api/v1/streams/nobody-here/key", headers=await creator(client))
    assert resp.status == 404


async def test_rotate_key_requires_authentication(client: Client) -> None:
    await create(client, await creator(client))
    client.session.cookie_jar.clear()
    resp = await client.post("/api/v1/streams/ann-live/key")
    assert resp.status == 401


async def test_rotate_key_writes_an_audit_entry_naming_the_actor(client: Client, dsn: str) -> None:
    headers = await creator(client)
    stream = (await create(client, headers))["stream"]
    await client.post("/api/v1/streams/ann-live/key", headers=headers)
    rows = await fetch(
        dsn,
        "SELECT action, actor_id FROM audit_log WHERE target_type = 'stream' AND target_id = $1"
        " ORDER BY id",
        str(stream["id"]),
    )
    owner_id = stream["owner"]["id"]
    assert [(r["action"], r["actor_id"]) for r in rows] == [
        ("stream.create", owner_id),
        ("stream.rotate_key", owner_id),
    ]


async def _kept_recording(client: Client, dsn: str, slug: str) -> tuple[int, Path]:
    """A finished, listed recording of `slug`, with files on this node's disk."""
    path = f"recordings/{slug}/r1"
    directory = client.app[CONFIG].data_path / path
    await asyncio.to_thread(_recording_files, directory)
    rows = await fetch(
        dsn,
        "INSERT INTO broadcasts (stream_id, ended_at, recording_path, recording_ready,"
        " recording_bytes) SELECT id, now(), $2, true, 4 FROM streams WHERE slug = $1"
        " RETURNING id",
        slug,
        path,
    )
    return int(rows[0]["id"]), directory


def _recording_files(directory: Path) -> None:
    directory.mkdir(parents=True)
    (directory / "vod.m3u8").write_text("#EXTM3U\n#EXT-X-ENDLIST\n")
    (directory / "seg-0.m4s").write_bytes(b"seg!")


async def test_the_owner_or_an_admin_takes_a_recording_down(client: Client, dsn: str) -> None:
    owner = await creator(client)
    other = await creator(client, "bob@example.com")
    resp = await client.post("/api/v1/streams", json={"slug": "show"}, headers=owner)
    assert resp.status == 201
    broadcast, directory = await _kept_recording(client, dsn, "show")
    url = f"/api/v1/streams/show/recordings/{broadcast}"
    assert (await client.get(f"/vod/{broadcast}/vod.m3u8")).status == 200

    client.session.cookie_jar.clear()  # the registrations' cookie sessions
    assert (await client.delete(url)).status == 401
    assert (await client.delete(url, headers=other)).status == 403
    for wrong in ("999999", "abc", str(10**20)):
        assert (
            await client.delete(f"/api/v1/streams/show/recordings/{wrong}", headers=owner)
        ).status == 404
    assert await asyncio.to_thread(directory.exists)  # nothing changed so far

    assert (await client.delete(url, headers=owner)).status == 204
    assert not await asyncio.to_thread(directory.exists)
    listed = await (await client.get("/api/v1/streams/show/recordings")).json()
    assert listed["recordings"] == []
    assert (await client.get(f"/vod/{broadcast}/vod.m3u8")).status == 404
    assert (await client.delete(url, headers=owner)).status == 404  # already gone
    audit = await fetch(dsn, "SELECT action FROM audit_log WHERE action = 'recording.delete'")
    assert len(audit) == 1

    again, _ = await _kept_recording(client, dsn, "show")
    staff = await admin(client, dsn)
    assert (
        await client.delete(f"/api/v1/streams/show/recordings/{again}", headers=staff)
    ).status == 204
