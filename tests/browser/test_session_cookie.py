"""The login cookie (shared/session.py): round trip, and nothing else gets through. No browser needed."""

from __future__ import annotations

from shared import session

SECRET = b"s" * 32
HASHTAG = "ZKR_abcdefghijklmnopqrstuvwxyz012345"


def test_round_trip_and_the_hashtag_is_not_readable():
    value = session.encode(HASHTAG, SECRET)
    assert session.decode(value, SECRET) == HASHTAG
    assert HASHTAG not in value and "abcdefgh" not in value
    assert session.encode(HASHTAG, SECRET) != value  # a fresh nonce each time


def test_tampered_foreign_expired_or_junk_cookies_are_nobody():
    value = session.encode(HASHTAG, SECRET)
    version, nonce, cipher, mac = value.split(".")
    flipped = cipher[:-1] + ("A" if cipher[-1] != "A" else "B")
    assert session.decode(f"{version}.{nonce}.{flipped}.{mac}", SECRET) is None
    assert session.decode(value, b"another secret") is None
    assert session.decode(session.encode(HASHTAG, SECRET, now=1000.0, max_age=10), SECRET) is None
    for junk in ("", "v1", "v1.a.b.c", "v2." + value[3:], "x" * 5000, "v1.%%%.b.c", None):
        assert session.decode(junk, SECRET) is None


def test_csrf_token_belongs_to_its_session():
    a, b = session.encode(HASHTAG, SECRET), session.encode(HASHTAG, SECRET)
    token = session.csrf_token(a, SECRET)
    assert session.check_csrf(a, token, SECRET)
    assert not session.check_csrf(b, token, SECRET)
    assert not session.check_csrf(a, None, SECRET) and not session.check_csrf(None, token, SECRET)
