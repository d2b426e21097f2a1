"""Events to every viewer of a stream: one EventBus interface, in-process or over Redis.

Imports nothing of livecore outside itself (checked: docs/architecture.md).
"""
