from __future__ import annotations

from tests.conftest import Client, bearer, register


async def test_register_logs_in_and_me_answers(client: Client) -> None:
    body = await register(client, creator=True)
    assert body["user"]["role"] == "creator"
    resp = await client.get("/api/v1/me", headers=bearer(body["token"]))
    assert resp.status == 200
    assert (await resp.json())["user"]["email"] == "ann@example.com"
