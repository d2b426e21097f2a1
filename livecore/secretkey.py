"""The deployment's secret key when none is configured: generated once into the data dir.

Imports nothing from livecore.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def stored_secret(path: Path) -> bytes:
    """The key generated on first start; several nodes must share LIVECORE_SECRET_KEY instead.

    Blocking file I/O: call it in a thread from the event loop. Processes of one box started
    together must not race to create it: `livecore serve --processes` calls it once first.
    """
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key
