"""GET /api/v1/me/export: the account's own data as a JSON download, nothing of anyone
else's, at most once a minute per account."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from livecore.config import Config
from livecore.store import Database
from livecore.store.data_rights import EXPORT_LIST_MAX
from tests.auth.test_two_factor import turn_on
from tests.chat.conftest import FAST_CHAT, stream, user
from tests.conftest import Client, MakeClient, bearer
from tests.rights.people import creator_with_fan


async def _export(client: Client, token: str) -> tuple[dict[str, Any], str]:
    resp = await client.get("/api/v1/me/export", headers=bearer(token))
    assert resp.status == 200, await resp.text()
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="livecore-data-')
    assert resp.headers["Cache-Control"] == "no-store"
    text = await resp.text()
    return json.loads(text), text


async def test_the_export_holds_each_kind_of_the_accounts_data_and_nothing_of_others(
    make_client: MakeClient, config: Config, db: Database
) -> None:
    client = await make_client(chat=FAST_CHAT, tips=replace(config.tips, payout_hold_days=0))
    ann, bob = await creator_with_fan(client, db)
    secret, recovery = await turn_on(client, bob["token"])
    resp = await client.post("/api/v1/me/payouts", json={"currency": "usd"},
                             headers=bearer(ann["token"]))  # fmt: skip
    assert resp.status == 201, await resp.text()

    mine, text = await _export(client, bob["token"])
    assert mine["format"] == "livecore-export/1"
    assert mine["truncated"] == [] and "at most 10000 items" in mine["note"]
    assert mine["account"]["email"] == "bob@example.com"
    assert mine["account"]["display_name"] == "bob"
    # Sessions without their token hashes; the one that asked is among them.
    assert mine["sessions"] and all("token" not in k for s in mine["sessions"] for k in s)
    assert bob["token"] not in text
    assert sorted(line["text"] for line in mine["chat_lines"]) == ["bob again", "bob says hi"]
    assert {line["stream"] for line in mine["chat_lines"]} == {"ann-live"}
    assert sorted(t["amount_minor"] for t in mine["tips_given"]) == [500, 700]
    assert mine["tips_received"] == [] and mine["payouts"] == [] and mine["balances"] == []
    (sub,) = mine["subscriptions"]
    assert (sub["tier"], sub["status"], sub["provider"]) == ("Gold", "active", "test")
    # Two-factor state, never its secret nor its recovery codes.
    assert mine["two_factor"]["enabled"] is True
    assert mine["two_factor"]["recovery_codes_left"] == len(recovery)
    assert secret not in text and not any(code in text for code in recovery)
    actions = [entry["action"] for entry in mine["audit"]]
    assert "user.register" in actions and "user.2fa_enabled" in actions
    # Nothing of Ann: not her e-mail, not her chat line.
    assert "ann@example.com" not in text and "ann answers" not in text

    theirs, text = await _export(client, ann["token"])
    assert [line["text"] for line in theirs["chat_lines"]] == ["ann answers"]
    assert theirs["tips_given"] == [] and theirs["subscriptions"] == []
    # Tips received: amounts and the platform's share, not who gave them.
    received = theirs["tips_received"]
    assert sorted(t["amount_minor"] for t in received) == [500, 700]
    assert all(set(t) == {"id", "stream", "amount_minor", "platform_fee_minor", "currency",
                          "status", "refunded_minor", "created_at"} for t in received)  # fmt: skip
    (payout,) = theirs["payouts"]
    assert (payout["currency"], payout["status"]) == ("usd", "in_transit")
    assert theirs["balances"] == [{"currency": "usd", "owed_minor": 0}]  # all paid out
    assert [s["slug"] for s in theirs["streams"]] == ["ann-live"]
    assert [t["name"] for t in theirs["tiers"]] == ["Gold"]
    assert theirs["two_factor"] == {"enabled": False, "enabled_at": None,
                                    "recovery_codes_left": 0}  # fmt: skip
    assert "bob@example.com" not in text and "bob says hi" not in text
    assert '"bob"' not in text  # nor his display name
    # Each export is in the audit log.
    assert (
        await db.pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'user.data_exported'")
        == 2
    )


async def test_an_account_exports_at_most_once_a_minute(client: Client) -> None:
    ann = await user(client, "ann")
    bob = await user(client, "bob")
    await _export(client, ann["token"])
    resp = await client.get("/api/v1/me/export", headers=bearer(ann["token"]))
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 61
    assert (await resp.json())["error"]["code"] == "too_many_requests"
    # Another account is not held up by it.
    await _export(client, bob["token"])
    # Without a session there is nothing to export.
    assert (await client.get("/api/v1/me/export")).status == 401


async def test_a_list_over_the_cap_is_cut_to_its_newest_items_and_named(
    client: Client, db: Database
) -> None:
    ann = await user(client, "ann", creator=True)
    stream_id = await stream(client, ann["token"], "ann-live")
    await db.pool.execute(
        "INSERT INTO chat_messages (stream_id, id, user_id, text, created_at)"
        " SELECT $1, n, $2, 'line ' || n, now() - make_interval(secs => 20000 - n)"
        " FROM generate_series(1, $3::int) n",
        stream_id, ann["user"]["id"], EXPORT_LIST_MAX + 1,
    )  # fmt: skip
    mine, _ = await _export(client, ann["token"])
    assert mine["truncated"] == ["chat_lines"]
    assert "These lists had more: chat_lines." in mine["note"]
    lines = mine["chat_lines"]
    assert len(lines) == EXPORT_LIST_MAX
    assert lines[0]["text"] == f"line {EXPORT_LIST_MAX + 1}" and lines[-1]["text"] == "line 2"
