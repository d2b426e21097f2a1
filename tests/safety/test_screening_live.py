"""The screening hook on a real broadcast: going live screens the title and the owner's
name, and each new thumbnail reaches the screener."""

from __future__ import annotations

import asyncio
import time

from livecore.appkeys import SCREENING
from tests.conftest import Client, bearer, create_stream, register
from tests.safety.conftest import admin
from tests.support.rtc import publishing


async def test_going_live_screens_the_title_and_thumbnails(node: Client, dsn: str) -> None:
    owner = await register(node, "maker@example.com", creator=True)
    node.session.cookie_jar.clear()
    key = await create_stream(node, str(owner["token"]), "golive", title="badword marathon")
    root = await admin(node, dsn)
    screening = node.app[SCREENING]
    async with publishing(node, "golive", key):
        # Live in the database means the hub's going-live callback has queued the stream.
        await screening.join()
        resp = await node.get("/api/v1/admin/reports", headers=bearer(str(root["token"])))
        [flag] = (await resp.json())["reports"]
        assert flag["source"] == "screening" and flag["target_kind"] == "stream"
        assert flag["note"] == "title contains the banned term 'badword'"
        assert flag["context"]["stream"]["thumbnail_url"] == "/hls/golive/thumb.jpg"
        # The first thumbnail is queued in the step that makes it servable.
        deadline = time.monotonic() + 20
        while (await node.get("/hls/golive/thumb.jpg")).status != 200:
            assert time.monotonic() < deadline, "no thumbnail"
            await asyncio.sleep(0.2)
        await screening.join()
        metrics = await (await node.get("/metrics")).text()
        screened = {
            line.split('"')[1]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("livecore_safety_screened_total{")
        }
        assert screened["title"] == 1 and screened["display_name"] == 1
        assert screened["thumbnail"] >= 1
