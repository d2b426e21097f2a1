"""Live chat: WebSocket rooms, moderation, presence.

May import: events, auth, store, leaf modules (never tips: see docs/architecture.md).
"""
