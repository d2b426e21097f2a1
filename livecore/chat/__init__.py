"""Live chat: WebSocket rooms, moderation, presence. May import: events, auth, store, errors."""
