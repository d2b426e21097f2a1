"""Accounts, password hashing, sessions, roles and stream keys.

May import: store, config. The HTTP side is `routes.py`.
"""
