"""Two-factor (TOTP) secrets encrypted at rest, so a database dump or a read replica alone
cannot make anyone's codes.

AES-256-GCM under a key derived from the deployment's secret key with HKDF-SHA256 and its
own label: the secret key signs other things (sessions' CSRF tokens, grants), and a key made
for one use must never serve another. The user's id is the associated data, so a row copied
onto another account does not decrypt there. The stored text is `v1:` and the URL-safe
base64 of a 12-byte random nonce followed by the ciphertext and its tag; a base32 secret
(A-Z, 2-7) can never start so, which is how a row written before encryption is told apart
(and sealed when a node starts).

May import: nothing from livecore.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX: Final = "v1:"
_LABEL: Final = b"livecore totp v1"
_NONCE_BYTES: Final = 12  # GCM's own size; random per encryption (2^-32 collision odds
# would need billions of enrolments under one key)


class SecretUnreadable(Exception):
    """The stored secret does not decrypt: the deployment's secret key was replaced since it
    was stored, or the value was altered or copied from another account."""


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


class SecretBox:
    def __init__(self, secret_key: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(
            secret_key
        )
        self._aead = AESGCM(derived)

    def seal(self, user_id: int, secret: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("ascii"), _associated(user_id))
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, user_id: int, stored: str) -> str:
        """The secret. A value that is not sealed is refused too: every node seals the rows
        of earlier versions before it serves, so plaintext here was written since, and a
        secret someone wrote into the table in clear must not let them make codes."""
        if not is_sealed(stored):
            raise SecretUnreadable()
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX) :].encode("ascii"))
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _associated(user_id))
            return plain.decode("ascii")
        except (InvalidTag, binascii.Error, ValueError, UnicodeError):
            raise SecretUnreadable() from None


def _associated(user_id: int) -> bytes:
    return f"livecore totp user {user_id}".encode("ascii")
