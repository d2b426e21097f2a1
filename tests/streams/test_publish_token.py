"""POST /api/v1/streams/{slug}/publish-token: the studio goes live without the stream key.

The token is accepted by WHIP as the Bearer token besides the stream key; an expired,
forged or other stream's token is refused like a wrong key, and the stream key keeps
working all along (OBS is never cut off by the studio)."""

from __future__ import annotations

import time
from typing import Any

from livecore.appkeys import HUBS, SECRET_KEY
from livecore.auth.playback import PlaybackGrant, sign_playback
from livecore.auth.publish import PUBLISH_TOKEN_TTL_S, PublishGrant, sign_publish
from tests.conftest import Client, bearer, register, wait_state
from tests.streams.test_streams_api import admin, create, creator, fetch
from tests.support.media import clip
from tests.support.rtc import publish

SDP_HEADERS = {"Content-Type": "application/sdp"}
REFUSED = {"error": {"code": "unauthorized", "message": "invalid stream key"}}


async def _token(client: Client, slug: str, headers: dict[str, str]) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/streams/{slug}/publish-token", headers=headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _whip_status(client: Client, slug: str, token: str) -> tuple[int, Any]:
    """Auth is checked before the offer is read: a refusal is 401 whatever the body."""
    resp = await client.post(f"/whip/{slug}", data="hello", headers=SDP_HEADERS | bearer(token))
    return resp.status, await resp.json()


async def test_owner_publishes_with_a_token_while_the_stream_key_keeps_working(
    client: Client,
) -> None:
    owner = await creator(client)
    key = (await create(client, owner, "ann-live"))["stream_key"]
    before = time.time()
    body = await _token(client, "ann-live", owner)
    assert body["token"].startswith("lcp_")
    assert body["whip_url"] == "/whip/ann-live"
    ttl = PUBLISH_TOKEN_TTL_S
    assert int(before) + ttl <= body["expires_at"] <= time.time() + ttl

    url = str(client.make_url("/whip/ann-live"))
    studio = await publish(client.session, url, body["token"], clip())
    try:
        await wait_state(client, "ann-live", "live")
        hub = client.app[HUBS].by_slug("ann-live")
        assert hub is not None
        # OBS reconnects with the stream key it always had: accepted, same broadcast.
        obs = await publish(client.session, url, key, clip())
        try:
            assert client.app[HUBS].by_slug("ann-live") is hub
        finally:
            await obs.close()
    finally:
        await studio.close()
    # Asking for tokens never rotated the key.
    status, _ = await _whip_status(client, "ann-live", key)
    assert status == 400  # past auth: only the offer "hello" is refused


async def test_expired_forged_and_other_streams_tokens_are_refused(client: Client) -> None:
    owner = await creator(client)
    stream_id = (await create(client, owner, "ann-live"))["stream"]["id"]
    await create(client, owner, "ann-other")
    secret = client.app[SECRET_KEY]
    user_id = (await (await client.get("/api/v1/me", headers=owner)).json())["user"]["id"]
    good = (await _token(client, "ann-live", owner))["token"]
    assert (await _whip_status(client, "ann-live", good))[0] == 400  # accepted

    expired = sign_publish(secret, PublishGrant(stream_id, user_id, int(time.time()) - 1))
    forged = sign_publish(b"not the secret", PublishGrant(stream_id, user_id, 2**40))
    payload, mac = good.removeprefix("lcp_").split(".")
    tampered = f"lcp_{payload[:-2]}AA.{mac}"
    other = (await _token(client, "ann-other", owner))["token"]
    # A playback token is signed with the same key for another purpose.
    playback = "lcp_" + sign_playback(secret, PlaybackGrant(stream_id, user_id, 2**40))
    for token in (expired, forged, tampered, other, playback, "lcp_", "lcp_x.y"):
        assert await _whip_status(client, "ann-live", token) == (401, REFUSED), token


async def test_only_the_owner_or_an_admin_gets_a_token(client: Client, dsn: str) -> None:
    owner = await creator(client)
    await create(client, owner, "ann-live")
    rival = await creator(client, "bob@example.com")
    viewer = bearer((await register(client, "vic@example.com"))["token"])
    for headers in (rival, viewer):
        resp = await client.post("/api/v1/streams/ann-live/publish-token", headers=headers)
        assert resp.status == 403
    client.session.cookie_jar.clear()  # the sign-ups' cookies: now nobody is logged in
    resp = await client.post("/api/v1/streams/ann-live/publish-token")
    assert resp.status == 401
    resp = await client.post("/api/v1/streams/nobody-here/publish-token", headers=owner)
    assert resp.status == 404
    token = (await _token(client, "ann-live", await admin(client, dsn)))["token"]
    assert (await _whip_status(client, "ann-live", token))[0] == 400  # accepted


async def test_a_token_of_an_admin_since_demoted_is_refused(client: Client, dsn: str) -> None:
    owner = await creator(client)
    await create(client, owner, "ann-live")
    token = (await _token(client, "ann-live", await admin(client, dsn)))["token"]
    await fetch(dsn, "UPDATE users SET role = 'viewer' WHERE email = 'root@example.com'")
    assert await _whip_status(client, "ann-live", token) == (401, REFUSED)
