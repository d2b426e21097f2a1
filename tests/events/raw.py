"""An event of any kind with any fields, for tests of the bus and the room's delivery: the
bus moves whatever it is given, and these tests check the moving, not the shapes (those are
livecore.events.types')."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Raw:
    kind: str
    fields: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return self.fields
