"""How an account is shown to itself and to admins in API answers."""

from __future__ import annotations

from typing import Any

from livecore.store.users import User


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "role": user.role,
        "created_at": user.created_at.isoformat(),
    }
