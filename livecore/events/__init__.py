"""Events to every viewer of a stream: one EventBus interface, in-process or over Redis.

Every kind of event is a frozen dataclass in `types.py`, the one place that knows its JSON;
the bus encodes it once per room.

Imports nothing of livecore outside itself (checked: docs/architecture.md).
"""
