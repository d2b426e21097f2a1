"""The store's own exceptions, so that callers outside store/ never handle asyncpg's."""

from __future__ import annotations


class StatementRefused(Exception):
    """PostgreSQL refused a statement (a constraint, a value out of range): nothing it would
    have written was written, and the same statement would be refused again."""
