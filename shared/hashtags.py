"""Observatory hashtags: random API keys, stored only as a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: 24 random bytes = 192 bits, URL-safe so that it survives curl -F and cookies
HASHTAG_BYTES = 24


def new_hashtag() -> str:
    return secrets.token_urlsafe(HASHTAG_BYTES)


def hash_hashtag(hashtag: str, pepper: bytes) -> str:
    """HMAC-SHA256 of the hashtag: what the database keeps and is looked up by.

    Lookup is by equality on this digest, so the secret itself is never
    compared character by character and never stored.
    """
    return hmac.new(pepper, hashtag.strip().encode("utf-8", "replace"), hashlib.sha256).hexdigest()


def looks_like_hashtag(value: str | None) -> bool:
    return value is not None and 8 <= len(value) <= 128 and value.isprintable()
