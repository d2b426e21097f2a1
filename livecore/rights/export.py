"""The account's data as one JSON document (`GET /api/v1/me/export`).

Bounded by a cap, not streamed: every list holds at most EXPORT_LIST_MAX items, newest
first, and `truncated` names the lists that had more (the document says so in `note`).
Read in one snapshot of the database, so the lists agree with each other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from livecore.store.data_rights import EXPORT_LIST_MAX, DataRights
from livecore.store.users import User

FORMAT: Final = "livecore-export/1"


async def export_document(data: DataRights, user: User) -> dict[str, Any]:
    sections = await data.export(user.id)
    truncated = sorted(name for name, s in sections.items() if s.truncated)
    note = f"Each list holds at most {EXPORT_LIST_MAX} items, newest first."
    if truncated:
        note += " These lists had more: " + ", ".join(truncated) + "."
    (two_factor,) = sections.pop("two_factor").rows
    return {
        "format": FORMAT,
        "generated_at": datetime.now(UTC).isoformat(),
        "note": note,
        "truncated": truncated,
        "account": {
            "id": user.id, "email": user.email, "display_name": user.display_name,
            "role": user.role, "created_at": user.created_at.isoformat(),
        },
        "two_factor": two_factor,
        **{name: section.rows for name, section in sections.items()},
    }  # fmt: skip
