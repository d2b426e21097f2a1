"""Filing reports: who may, on what, how often, and the refusals."""

from __future__ import annotations

from typing import Any

from livecore.config import SafetyConfig
from tests.chat.conftest import FAST_CHAT, connect, user
from tests.conftest import Client, MakeClient, bearer
from tests.safety.conftest import owner_and_stream


async def _report(client: Client, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    resp = await client.post("/api/v1/reports", json=body, headers=bearer(token))
    return resp.status, await resp.json()


async def test_anyone_logged_in_reports_a_stream_user_recording_and_line(node: Client) -> None:
    owner, stream_id = await owner_and_stream(node)
    alice = await user(node, "alice")
    talker = await connect(node, "room-one", str(owner["token"]))
    ack = await talker.say("hello room", "h")
    await talker.close()
    token = str(alice["token"])
    status, body = await _report(
        node, token, {"target_kind": "stream", "stream": "room-one", "category": "violence",
                      "note": "fight on stream"},
    )  # fmt: skip
    assert status == 201
    report = body["report"]
    assert report["target_kind"] == "stream" and report["target_id"] == str(stream_id)
    assert report["subject_id"] == owner["user"]["id"] and report["state"] == "open"
    assert report["source"] == "user" and report["note"] == "fight on stream"
    status, body = await _report(
        node, token, {"target_kind": "user", "user_id": owner["user"]["id"], "category": "spam"}
    )
    assert status == 201 and body["report"]["stream_id"] is None
    status, body = await _report(
        node, token, {"target_kind": "line", "stream": "room-one", "line_id": ack["id"],
                      "category": "harassment_or_hate"},
    )  # fmt: skip
    assert status == 201 and body["report"]["target_id"] == f"{stream_id}:{ack['id']}"


async def test_refusals(node: Client) -> None:
    owner, _ = await owner_and_stream(node)
    alice = await user(node, "alice")
    token = str(alice["token"])
    on_stream = {"target_kind": "stream", "stream": "room-one", "category": "spam"}
    # Not logged in.
    resp = await node.post("/api/v1/reports", json=on_stream)
    assert resp.status == 401
    # A category that is not one of the list.
    status, body = await _report(node, token, {**on_stream, "category": "rude"})
    assert status == 422 and "category" in body["error"]["fields"]
    status, body = await _report(node, token, {**on_stream, "target_kind": "planet"})
    assert status == 422 and "target_kind" in body["error"]["fields"]
    # Targets that do not exist.
    for target in (
        {"target_kind": "stream", "stream": "no-such-room"},
        {"target_kind": "user", "user_id": 999_999},
        {"target_kind": "recording", "recording_id": 999_999},
        {"target_kind": "line", "stream": "room-one", "line_id": 999_999},
    ):
        status, body = await _report(node, token, {**target, "category": "other"})
        assert status == 404, target
    # One open report per reporter and target; someone else may still report it.
    assert (await _report(node, token, on_stream))[0] == 201
    status, body = await _report(node, token, {**on_stream, "category": "violence"})
    assert status == 409
    assert body["error"] == {
        "code": "conflict", "message": "you have an open report on this stream already"
    }  # fmt: skip
    assert (await _report(node, str(owner["token"]), on_stream))[0] == 201


async def test_reports_are_rate_limited_per_reporter(
    make_client: MakeClient, redis_url: str
) -> None:
    node = await make_client(
        redis_url=redis_url, chat=FAST_CHAT, safety=SafetyConfig(report_limit=2)
    )
    alice = await user(node, "alice")
    bob = await user(node, "bob")
    people = [await user(node, name) for name in ("carol", "dave", "erin")]
    token = str(alice["token"])
    for person in people[:2]:
        body = {"target_kind": "user", "user_id": person["user"]["id"], "category": "spam"}
        assert (await _report(node, token, body))[0] == 201
    third = {"target_kind": "user", "user_id": people[2]["user"]["id"], "category": "spam"}
    resp = await node.post("/api/v1/reports", json=third, headers=bearer(token))
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert (await resp.json())["error"]["code"] == "too_many_requests"
    # The limit is per reporter: bob may still report.
    assert (await _report(node, str(bob["token"]), third))[0] == 201
