from __future__ import annotations

from livecore.auth.playback import PlaybackGrant, sign_playback, verify_playback

KEY = b"k" * 32


def test_genuine_token_verifies() -> None:
    grant = PlaybackGrant(stream_id=7, viewer_id=3, expires_at=2_000)
    token = sign_playback(KEY, grant)
    assert verify_playback(KEY, token, 7, now=1_000) == grant


def test_expired_token_is_refused() -> None:
    token = sign_playback(KEY, PlaybackGrant(7, 3, 1_000))
    assert verify_playback(KEY, token, 7, now=1_000) is None


def test_token_for_another_stream_is_refused() -> None:
    token = sign_playback(KEY, PlaybackGrant(7, 3, 2_000))
    assert verify_playback(KEY, token, 8, now=1_000) is None


def test_forged_tokens_are_refused() -> None:
    token = sign_playback(KEY, PlaybackGrant(7, 3, 2_000))
    payload, mac = token.split(".")
    # Another key, a changed payload (later expiry), a flipped MAC byte, garbage.
    assert verify_playback(b"x" * 32, token, 7, now=1_000) is None
    longer = sign_playback(KEY, PlaybackGrant(7, 3, 9_999)).split(".")[0]
    assert verify_playback(KEY, f"{longer}.{mac}", 7, now=1_000) is None
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    assert verify_playback(KEY, f"{payload}.{flipped}", 7, now=1_000) is None
    for junk in ("", ".", "a.b.c", "!!!.???", "x" * 300):
        assert verify_playback(KEY, junk, 7, now=1_000) is None
