"""Secrets: session tokens, stream keys, reset tokens and CSRF tokens.

Every secret is 256 random bits, kept by the server only as its SHA-256, and looked up by
that hash, so no secret is ever compared in Python. CSRF tokens are derived (HMAC) from
the session and compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SESSION_PREFIX = "lcs_"
STREAM_KEY_PREFIX = "lck_"
RESET_PREFIX = "lcr_"


def new_secret(prefix: str) -> str:
    """A fresh 256-bit URL-safe secret; the prefix tells a leaked one apart at a glance."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def csrf_token(secret_key: bytes, session_hash: bytes) -> str:
    mac = hmac.new(secret_key, b"csrf\x00" + session_hash, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def csrf_matches(secret_key: bytes, session_hash: bytes, presented: str) -> bool:
    expected = csrf_token(secret_key, session_hash)
    return hmac.compare_digest(expected.encode("ascii"), presented.encode("utf-8", "replace"))
