"""TOTP codes (RFC 6238), recovery codes and the pending-login token of a two-factor login.

Codes are the kind every authenticator app makes: six digits, a new one every 30 s, HMAC-SHA1
over the shared secret (pyotp). A code is accepted for its own time step and one step either
side (a phone's clock a little off, a code typed as it changes); anything older is expired.

The pending-login token carries "user U passed the password step until T" between the two
steps of a login, so the page never sends the password again. It is signed with the
deployment's secret key, and the signature also covers the user's current password hash: a
password change or reset voids every pending login at once.

May import: nothing from livecore.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
import time
from dataclasses import dataclass
from typing import Final

import pyotp
import segno

DIGITS: Final = 6
STEP_S: Final = 30
# Steps either side of now whose code is still good: RFC 6238 section 5.2 advises one.
SKEW_STEPS: Final = 1
RECOVERY_CODES: Final = 10
# 12 base32 characters (60 bits) in three groups of four: easy to copy, too many to guess
# within the throttle.
_RECOVERY_GROUPS: Final = 3
_RECOVERY_GROUP_CHARS: Final = 4
_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"

PENDING_PREFIX: Final = "lc2_"
PENDING_TTL_S: Final = 300
_PENDING_CONTEXT: Final = b"livecore-2fa-login\x00"
_RECOVERY_CONTEXT: Final = b"livecore-2fa-recovery\x00"
_MAX_PENDING_CHARS: Final = 200


def new_secret() -> str:
    """A fresh 160-bit secret in base32, the form authenticator apps take."""
    return pyotp.random_base32(32)


def otpauth_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads (from the QR code or typed in)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_svg(uri: str) -> str:
    """The URI as a QR code, an SVG document (dark modules on white, a quiet zone around)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(
        out, kind="svg", scale=4, border=4, xmldecl=False, dark="#000", light="#fff"
    )
    return out.getvalue().decode("utf-8")


def is_totp_code(code: str) -> bool:
    return len(code) == DIGITS and code.isascii() and code.isdigit()


def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step whose code `code` is, if it is within the accepted window; else None.

    Whether that step was used already is the store's question (TwoFactorSecrets.use_step).
    """
    if not is_totp_code(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    at = time.time() if now is None else now
    step = totp.timecode(at)
    found = None
    # Every candidate is compared (no early return), in constant time each.
    for offset in range(-SKEW_STEPS, SKEW_STEPS + 1):
        if hmac.compare_digest(totp.at(at, counter_offset=offset), code):
            found = step + offset
    return found


def new_recovery_codes() -> list[str]:
    size = _RECOVERY_GROUPS * _RECOVERY_GROUP_CHARS
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_BASE32) for _ in range(size))
        groups = (raw[i : i + _RECOVERY_GROUP_CHARS] for i in range(0, size, _RECOVERY_GROUP_CHARS))
        codes.append("-".join(groups))
    return codes


def normalise_recovery_code(code: str) -> str:
    """As typed, in any case, with or without the dashes and spaces."""
    return "".join(c for c in code.lower() if c not in "- ")


def recovery_hash(secret_key: bytes, user_id: int, code: str) -> bytes:
    """Keyed and per user: a leaked table alone cannot be searched for codes offline."""
    message = _RECOVERY_CONTEXT + f"{user_id}\x00{normalise_recovery_code(code)}".encode()
    return hmac.new(secret_key, message, hashlib.sha256).digest()


class SecondFactorRequired(Exception):
    """The password is right and the account has two-factor authentication on: a code must
    complete the login (livecore.auth.twofactor)."""

    def __init__(self, user_id: int, password_hash: str) -> None:
        super().__init__("second factor required")
        self.user_id = user_id
        # The hash the password was just checked against: the pending login is signed over
        # it, so a password change racing with this login voids it too.
        self.password_hash = password_hash


@dataclass(frozen=True, slots=True)
class PendingLogin:
    user_id: int
    expires_at: int  # unix seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _pending_mac(secret_key: bytes, payload: bytes, password_hash: str) -> bytes:
    message = _PENDING_CONTEXT + payload + b"\x00" + password_hash.encode()
    return hmac.new(secret_key, message, hashlib.sha256).digest()


def sign_pending(
    secret_key: bytes, user_id: int, password_hash: str, *, now: float | None = None
) -> tuple[str, int]:
    """A pending-login token for `user_id` and when it expires (unix seconds)."""
    expires_at = int(time.time() if now is None else now) + PENDING_TTL_S
    payload = f"{user_id}.{expires_at}".encode()
    mac = _pending_mac(secret_key, payload, password_hash)
    return f"{PENDING_PREFIX}{_b64(payload)}.{_b64(mac)}", expires_at


def pending_user(token: str) -> int | None:
    """The user a token names, unverified: only to look up the password hash it must match."""
    if not token.startswith(PENDING_PREFIX) or len(token) > _MAX_PENDING_CHARS:
        return None
    body = token[len(PENDING_PREFIX) :]
    if body.count(".") != 1:
        return None
    try:
        user_text = _unb64(body.split(".")[0]).decode("ascii").split(".")[0]
        return int(user_text) if user_text.isdigit() else None
    except (ValueError, UnicodeDecodeError):
        return None


def verify_pending(
    secret_key: bytes, token: str, password_hash: str, *, now: float | None = None
) -> PendingLogin | None:
    """The pending login if the token is genuine, for this password, and not expired."""
    if not token.startswith(PENDING_PREFIX) or len(token) > _MAX_PENDING_CHARS:
        return None
    body = token[len(PENDING_PREFIX) :]
    if body.count(".") != 1:
        return None
    payload_text, mac_text = body.split(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
        if not hmac.compare_digest(mac, _pending_mac(secret_key, payload, password_hash)):
            return None
        user_id, expires_at = map(int, payload.decode("ascii").split("."))
    except (ValueError, UnicodeDecodeError):
        return None
    if expires_at <= (time.time() if now is None else now):
        return None
    return PendingLogin(user_id, expires_at)
