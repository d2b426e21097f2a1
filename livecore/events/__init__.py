"""Events to every viewer of a stream: one EventBus interface, in-process or over Redis.

May import: config.
"""
