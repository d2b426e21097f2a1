"""What an e-mail address and a display name must be, and how they are stored (normalised)."""

from __future__ import annotations

import re
import unicodedata

from livecore.store.data_rights import DELETED_NAME
from livecore.text import has_control, has_visible, name_key

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}")


def normalise_email(email: str) -> str:
    return unicodedata.normalize("NFKC", email).strip()


def check_email(email: str) -> str | None:
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        return "is not a valid email address"
    return None


def normalise_display_name(name: str) -> str:
    """A display name as stored: NFKC (full-width and styled letters become plain), stripped."""
    return unicodedata.normalize("NFKC", name).strip()


def check_display_name(name: str) -> str | None:
    """What is wrong with a normalised display name, or None."""
    if not 1 <= len(name) <= 64:
        return "must be 1 to 64 characters"
    # The chat's control characters (bidi overrides and isolates included, and no line
    # breaks in a name), and every format character: zero-width ones hide in look-alikes.
    if has_control(name, newlines=False) or any(unicodedata.category(c) == "Cf" for c in name):
        return "must not contain control characters"
    if not has_visible(name):
        return "must contain a visible character"
    if name_key(name) == DELETED_NAME:
        return "is reserved: deleted accounts' chat lines are shown with it"
    return None
