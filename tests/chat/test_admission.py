"""The join line: joins faster than a node takes them wait their turn; beyond the longest
wait they are refused with 503 and a jittered Retry-After; the line is a metric and an answer
the watch page reads."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from livecore.chat.admission import Admission, LineFull
from tests.chat.conftest import chat_config, connect, stream, user
from tests.conftest import Client, MakeClient


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _line(clock: _Clock, *, rate: float = 1.0, burst: int = 2, max_wait_s: float = 0.0,
          high: bool = False) -> Admission:  # fmt: skip
    def rand(low: float, top: float) -> float:
        return top if high else low

    return Admission(rate, burst, max_wait_s, CollectorRegistry(), clock=clock, rand=rand)


async def test_a_burst_is_let_in_at_once_and_the_next_join_is_refused_until_its_slot() -> None:
    clock = _Clock()
    line = _line(clock)
    await line.enter()
    await line.enter()
    with pytest.raises(LineFull) as full:
        await line.enter()
    assert full.value.retry_after_s == 1
    clock.now += 1.0  # one slot later
    await line.enter()
    assert line.admitted._value.get() == 3


async def test_a_refusal_says_when_to_come_back_with_jitter_past_the_wait() -> None:
    clock = _Clock()
    line = _line(clock, rate=1.0, burst=1, max_wait_s=3.0, high=True)
    await line.enter()  # the burst
    waiters = [asyncio.create_task(line.enter()) for _ in range(2)]  # they wait 1 and 2 s
    await asyncio.sleep(0)
    assert line.waiting == 2
    assert line.state().wait_s == 3.0 and line.state().open  # the next would wait 3 s
    clock.now -= 2.0  # seen from earlier, the line holds 5 s of joins
    with pytest.raises(LineFull) as full:
        await line.enter()
    # 5 s of line less the 3 s a join may wait, times the top of the jitter (1.5).
    assert full.value.retry_after_s == 3 and full.value.waiting == 2
    assert not line.state().open and line.state().retry_after_s == 3
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert line.waiting == 0


async def test_joins_that_outrun_the_node_wait_their_turn_and_get_in(
    make_client: MakeClient,
) -> None:
    # One join every 0.5 s after the first: the second and third wait, and are let in.
    client = await make_client(chat=chat_config(admit_per_s=2.0, admit_burst=1))
    owner = await user(client, "owner", creator=True)
    await stream(client, owner["token"])
    viewers = await asyncio.gather(*(connect(client, "room-one") for _ in range(3)))
    assert all(v.hello["type"] == "hello" for v in viewers)
    metrics = await (await client.get("/metrics")).text()
    assert "livecore_chat_admitted_total 3.0" in metrics
    assert "livecore_chat_admission_queued_total 2.0" in metrics
    assert "livecore_chat_admission_waiting 0.0" in metrics
    for viewer in viewers:
        await viewer.close()


async def test_a_join_past_the_longest_wait_is_refused_with_retry_after(
    make_client: MakeClient,
) -> None:
    client = await make_client(
        chat=chat_config(admit_per_s=0.01, admit_burst=1, admit_max_wait_s=0.0)
    )
    owner = await user(client, "owner", creator=True)
    await stream(client, owner["token"])
    first = await connect(client, "room-one")
    resp = await client.get("/ws/room-one")
    assert resp.status == 503
    body = await resp.json()
    assert body["error"]["code"] == "unavailable"
    # 100 s of line (one join per 100 s), spread by up to half again.
    assert 100 <= int(resp.headers["Retry-After"]) <= 150
    line = await client.get("/api/v1/chat/line")
    assert line.status == 200 and line.headers["Cache-Control"] == "no-store"
    state = await line.json()
    assert state["open"] is False and state["waiting"] == 0 and state["admit_per_s"] == 0.01
    assert 90 <= state["retry_after_s"] <= 150 and line.headers["Retry-After"]
    metrics = await (await client.get("/metrics")).text()
    assert 'livecore_chat_admission_refused_total{reason="line_full"} 1.0' in metrics
    await first.close()


async def test_an_idle_line_is_open(client: Client) -> None:
    resp = await client.get("/api/v1/chat/line")
    state = await resp.json()
    assert state == {
        "open": True, "waiting": 0, "wait_s": 0.0, "admit_per_s": 3000.0, "retry_after_s": 0,
    }  # fmt: skip
    assert "Retry-After" not in resp.headers
