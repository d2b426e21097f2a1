"""livecore.auth.totp alone: which time steps a code is good for, recovery codes as people type
them, and the pending-login token's signature and lifetime."""

from __future__ import annotations

import pyotp

from livecore.auth import totp

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = 1_700_000_015.0  # 15 s into its 30 s step
KEY = b"k" * 32


def _code_at(step_offset: int) -> str:
    return pyotp.TOTP(SECRET).at(NOW + step_offset * totp.STEP_S)


def test_a_code_is_good_one_step_either_side_of_now_and_no_further() -> None:
    step = int(NOW // totp.STEP_S)
    for offset in (-1, 0, 1):
        assert totp.matching_step(SECRET, _code_at(offset), now=NOW) == step + offset
    for offset in (-3, -2, 2, 3):
        code = _code_at(offset)
        if code not in {_code_at(-1), _code_at(0), _code_at(1)}:  # a one-in-a-million clash
            assert totp.matching_step(SECRET, code, now=NOW) is None


def test_only_six_ascii_digits_are_codes() -> None:
    for given in ("", "12345", "1234567", "12345a", "١٢٣٤٥٦"):  # the last: Arabic-Indic digits
        assert totp.matching_step(SECRET, given, now=NOW) is None


def test_recovery_codes_are_unique_and_read_as_typed() -> None:
    codes = totp.new_recovery_codes()
    assert len(set(codes)) == totp.RECOVERY_CODES
    code = codes[0]
    assert len(code) == 14 and code.count("-") == 2
    typed = code.upper().replace("-", " ")
    assert totp.recovery_hash(KEY, 7, typed) == totp.recovery_hash(KEY, 7, code)
    assert totp.recovery_hash(KEY, 8, code) != totp.recovery_hash(KEY, 7, code)


def test_pending_token_is_bound_to_key_password_and_time() -> None:
    token, expires_at = totp.sign_pending(KEY, 7, "hash-1", now=NOW)
    assert expires_at == int(NOW) + totp.PENDING_TTL_S
    assert totp.pending_user(token) == 7
    found = totp.verify_pending(KEY, token, "hash-1", now=NOW)
    assert found == totp.PendingLogin(7, expires_at)
    assert totp.verify_pending(KEY, token, "hash-2", now=NOW) is None
    assert totp.verify_pending(b"x" * 32, token, "hash-1", now=NOW) is None
    assert totp.verify_pending(KEY, token, "hash-1", now=expires_at) is None
    assert totp.verify_pending(KEY, token + "A", "hash-1", now=NOW) is None
    assert totp.pending_user("lc2_") is None and totp.pending_user("lcs_x.y") is None
