"""The browser's login: a signed, encrypted session cookie that carries the observatory's hashtag.

``/login`` checks a hashtag once and sets the cookie ``photcal_session``; from
then on every service reads the hashtag back from it (``shared.auth.hashtag_of``),
so the gateway's uploads, the CPCS endpoints and the pages all accept it,
exactly as they accept the plain CPCS ``hashtag`` cookie.

The cookie's value is ``v1.<nonce>.<ciphertext>.<mac>`` (URL-safe base64):

* the payload is ``{"h": hashtag, "exp": unix time}`` as JSON;
* it is encrypted with a keystream of HMAC-SHA256(key_enc, nonce || counter)
  (HMAC as a PRF in counter mode), so a copied cookie or a proxy's log does not
  show the hashtag itself;
* and authenticated (encrypt-then-MAC) with HMAC-SHA256(key_mac, ...), so it
  cannot be forged or altered; it expires after :data:`MAX_AGE` seconds.

Both keys derive from one secret, ``PHOTCAL_SESSION_SECRET`` or, unset, a
random file under ``PHOTCAL_DATA_DIR/secrets`` shared by the services that
``photcal run`` starts. The same secret gives the pages' anti-CSRF tokens.
The cookie is ``HttpOnly`` and ``SameSite=Lax`` (a cross-site POST does not
carry it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Mapping

COOKIE = "photcal_session"
MAX_AGE = 14 * 24 * 3600
_VERSION = "v1"
#: the request/app key where a service may keep its secret (else the settings' one, cached)
APP_KEY = "photcal.session_secret"

_cached_secret: bytes | None = None


def settings_secret() -> bytes:
    """The secret from the environment (``PHOTCAL_SESSION_SECRET``) or its file; read once per process."""
    global _cached_secret
    if _cached_secret is None:
        from shared.settings import CommonSettings

        _cached_secret = CommonSettings().session_key()
    return _cached_secret


def secret_of(app: Mapping | None) -> bytes:
    if app is not None:
        try:
            value = app.get(APP_KEY)
        except Exception:
            value = None
        if value:
            return value
    return settings_secret()


def _keys(secret: bytes) -> tuple[bytes, bytes]:
    enc = hmac.new(secret, b"photcal-session-enc", hashlib.sha256).digest()
    mac = hmac.new(secret, b"photcal-session-mac", hashlib.sha256).digest()
    return enc, mac


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _keystream(key: bytes, nonce: bytes, n: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out.extend(hmac.new(key, nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest())
        counter += 1
    return bytes(out[:n])


def encode(hashtag: str, secret: bytes, *, now: float | None = None, max_age: int = MAX_AGE) -> str:
    """A cookie value for ``hashtag``, valid ``max_age`` seconds."""
    enc_key, mac_key = _keys(secret)
    payload = json.dumps({"h": hashtag, "exp": int((now or time.time()) + max_age)}, separators=(",", ":")).encode()
    nonce = os.urandom(16)
    cipher = bytes(a ^ b for a, b in zip(payload, _keystream(enc_key, nonce, len(payload))))
    body = f"{_VERSION}.{_b64(nonce)}.{_b64(cipher)}"
    mac = hmac.new(mac_key, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def decode(value: str | None, secret: bytes, *, now: float | None = None) -> str | None:
    """The hashtag in a valid, unexpired cookie value; None for anything else (never raises)."""
    if not value or len(value) > 1024:
        return None
    try:
        version, nonce_text, cipher_text, mac_text = value.split(".")
        if version != _VERSION:
            return None
        enc_key, mac_key = _keys(secret)
        expected = hmac.new(mac_key, f"{version}.{nonce_text}.{cipher_text}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac_text)):
            return None
        nonce, cipher = _unb64(nonce_text), _unb64(cipher_text)
        payload = json.loads(bytes(a ^ b for a, b in zip(cipher, _keystream(enc_key, nonce, len(cipher)))))
        if float(payload["exp"]) < (now or time.time()):
            return None
        hashtag = payload["h"]
        return hashtag if isinstance(hashtag, str) and hashtag else None
    except (ValueError, KeyError, TypeError):
        return None


def hashtag_from_cookies(cookies: Mapping[str, str], app: Mapping | None = None) -> str | None:
    value = cookies.get(COOKIE)
    return decode(value, secret_of(app)) if value else None


def csrf_token(cookie_value: str, secret: bytes) -> str:
    """The anti-CSRF token of a session: forms carry it, a cross-site page cannot know it."""
    return _b64(hmac.new(secret, b"csrf|" + cookie_value.encode(), hashlib.sha256).digest()[:18])


def check_csrf(cookie_value: str | None, token: str | None, secret: bytes) -> bool:
    if not cookie_value or not token:
        return False
    return hmac.compare_digest(csrf_token(cookie_value, secret), token)
