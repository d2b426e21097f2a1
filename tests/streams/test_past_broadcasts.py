"""GET /api/v1/streams/{slug}/broadcasts: the owner's past broadcasts with their audience."""

from __future__ import annotations

from tests.conftest import Client
from tests.streams.test_streams_api import admin, create, creator, fetch


async def test_past_broadcasts_list_their_peak_and_unique_viewers(client: Client, dsn: str) -> None:
    owner = await creator(client)
    stream_id = (await create(client, owner))["stream"]["id"]
    other_id = (await create(client, owner, "ann-other"))["stream"]["id"]
    rows = [
        # (stream, started minutes ago, peak, unique, recording kept)
        (stream_id, 300, 12, 40, True),
        (stream_id, 100, 3, 5, False),
        (other_id, 50, 99, 99, True),
    ]
    for sid, ago, peak, unique, kept in rows:
        await fetch(
            dsn,
            "INSERT INTO broadcasts (stream_id, started_at, ended_at, peak_viewers,"
            " unique_viewers, recording_path, recording_ready, recording_bytes)"
            " VALUES ($1, now() - make_interval(mins => $2), now() - make_interval(mins => $2)"
            " + interval '30 minutes', $3, $4, $5, $6, $7)",
            sid, ago, peak, unique, "rec/x" if kept else "", kept, 1000 if kept else 0,
        )  # fmt: skip
    # Still live: not a past broadcast yet.
    await fetch(dsn, "INSERT INTO broadcasts (stream_id) VALUES ($1)", stream_id)

    resp = await client.get("/api/v1/streams/ann-live/broadcasts", headers=owner)
    assert resp.status == 200, await resp.text()
    past = (await resp.json())["broadcasts"]
    assert [(b["peak_viewers"], b["unique_viewers"]) for b in past] == [(3, 5), (12, 40)]
    assert past[0]["recording"] is None
    assert past[1]["recording"] == f"/vod/{past[1]['id']}/vod.m3u8"
    assert all(b["started_at"] < b["ended_at"] for b in past)

    rival = await creator(client, "bob@example.com")
    resp = await client.get("/api/v1/streams/ann-live/broadcasts", headers=rival)
    assert resp.status == 403
    resp = await client.get("/api/v1/streams/ann-live/broadcasts", headers=await admin(client, dsn))
    assert resp.status == 200
