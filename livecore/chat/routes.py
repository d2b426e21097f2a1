"""The chat's routes: `GET /ws/{stream}` (the chat WebSocket, `socket_routes.py`; its
frames are in `protocol.py`), `GET /api/v1/chat/line` (the join line's state, for a refused
viewer) and the moderation API (`moderation_routes.py`)."""

from __future__ import annotations

from aiohttp import web

from livecore.chat.moderation_routes import (
    delete_chat_ban,
    delete_chat_message,
    delete_moderator,
    get_chat_bans,
    get_chat_reports,
    get_chat_settings,
    get_moderators,
    patch_chat_settings,
    post_chat_ban,
    post_chat_report,
    post_chat_report_resolution,
    post_chat_timeout,
    post_moderator,
    put_moderator,
)
from livecore.chat.socket_routes import get_chat_line, get_ws


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/ws/{stream}", get_ws)
    app.router.add_get("/api/v1/chat/line", get_chat_line)
    base = "/api/v1/streams/{slug}/chat"
    app.router.add_delete(base + "/messages/{message_id}", delete_chat_message)
    app.router.add_post(base + "/messages/{message_id}/reports", post_chat_report)
    app.router.add_post(base + "/timeouts", post_chat_timeout)
    app.router.add_post(base + "/bans", post_chat_ban)
    app.router.add_delete(base + "/bans/{user_id}", delete_chat_ban)
    app.router.add_get(base + "/settings", get_chat_settings)
    app.router.add_patch(base + "/settings", patch_chat_settings)
    app.router.add_get(base + "/reports", get_chat_reports)
    app.router.add_post(base + "/reports/{report_id}", post_chat_report_resolution)
    app.router.add_get(base + "/bans", get_chat_bans)
    app.router.add_get("/api/v1/streams/{slug}/moderators", get_moderators)
    app.router.add_post("/api/v1/streams/{slug}/moderators", post_moderator)
    app.router.add_put("/api/v1/streams/{slug}/moderators/{user_id}", put_moderator)
    app.router.add_delete("/api/v1/streams/{slug}/moderators/{user_id}", delete_moderator)
