"""Accounts, password hashing, sessions, roles and stream keys.

May import: store and the leaf modules (docs/architecture.md). The HTTP side is `routes.py`.
"""
