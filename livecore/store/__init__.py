"""PostgreSQL access: the pool, migrations and repositories.

All SQL lives here. Repositories take plain values and return frozen dataclasses;
`asyncpg.Record` never leaves this package. Imports nothing from livecore.
"""

from __future__ import annotations

from livecore.store.db import Database, UniqueViolation
from livecore.store.migrate import MigrationReport, apply_migrations, pending_migrations

__all__ = [
    "Database",
    "MigrationReport",
    "UniqueViolation",
    "apply_migrations",
    "pending_migrations",
]
