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
The cookie is ``HttpOnly``, ``SameSite=Strict``, and ``Secure`` when the
client came over https (the gateway believes ``X-Forwarded-Proto`` only from a
trusted proxy) or ``PHOTCAL_COOKIE_SECURE=1``.

SameSite does not stop a page on *another port of the same host* (same site,
other origin). So a write that takes its hashtag from this cookie must also
show it comes from our own pages: the session's anti-CSRF token (the pages'
forms carry it as ``csrf``, scripts may send ``X-CSRF-Token``) or a browser's
same-origin ``Origin`` / ``Sec-Fetch-Site: same-origin`` header
(:func:`write_allowed`). ``/login`` needs the same-origin headers or the login
form's own token (:func:`login_token`), so no other page can log a visitor in
as someone else.

Each cookie's nonce is its session id: logging out records it as revoked in
the database (``shared/db/sessions.py``) until the cookie would have expired,
so a copy of the cookie saved before is refused by every replica.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic_settings import BaseSettings, SettingsConfigDict

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


@dataclass(frozen=True)
class Session:
    """A valid, unexpired login: its hashtag, its id (the cookie's nonce) and when it expires."""

    hashtag: str
    session_id: str
    expires: float
    cookie: str


def decode(value: str | None, secret: bytes, *, now: float | None = None) -> str | None:
    """The hashtag in a valid, unexpired cookie value; None for anything else (never raises)."""
    found = read(value, secret, now=now)
    return found.hashtag if found else None


def read(value: str | None, secret: bytes, *, now: float | None = None) -> Session | None:
    """The session of a valid, unexpired cookie value; None for anything else (never raises)."""
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
        expires = float(payload["exp"])
        if expires < (now or time.time()):
            return None
        hashtag = payload["h"]
        if not isinstance(hashtag, str) or not hashtag:
            return None
        return Session(hashtag, nonce_text, expires, value)
    except (ValueError, KeyError, TypeError):
        return None


def hashtag_from_cookies(cookies: Mapping[str, str], app: Mapping | None = None) -> str | None:
    value = cookies.get(COOKIE)
    return decode(value, secret_of(app)) if value else None


def session_from_cookies(cookies: Mapping[str, str], app: Mapping | None = None) -> Session | None:
    value = cookies.get(COOKIE)
    return read(value, secret_of(app)) if value else None


def csrf_token(cookie_value: str, secret: bytes) -> str:
    """The anti-CSRF token of a session: forms carry it, a cross-site page cannot know it."""
    return _b64(hmac.new(secret, b"csrf|" + cookie_value.encode(), hashlib.sha256).digest()[:18])


def check_csrf(cookie_value: str | None, token: str | None, secret: bytes) -> bool:
    if not cookie_value or not token:
        return False
    return hmac.compare_digest(csrf_token(cookie_value, secret), token)


# ---------------------------------------------------------------- where a write comes from

#: methods that change something (the CPCS GET writes never take the cookie: services/ingest/cpcs.py)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: the form field and the header that carry the anti-CSRF token
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
#: request key where the gateway puts the origin its client used (scheme from a trusted proxy only)
ORIGIN_KEY = "photcal.origin"
#: the login form's pre-session cookie (its nonce) and the field carrying the matching token
LOGIN_COOKIE = "photcal_login"

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _normal_origin(scheme: str, host: str) -> str | None:
    scheme = scheme.lower()
    try:
        parts = urlsplit(f"{scheme}://{host}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    port = port or _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{parts.hostname.lower()}:{port}"


def request_origin(request) -> str:
    """``scheme://host`` the client used.

    The gateway sets it (``ORIGIN_KEY``) from its own socket or a trusted proxy's
    ``X-Forwarded-Proto``; behind the gateway (the lightcurve service, reached only
    through it) ``X-Forwarded-Proto``/``X-Forwarded-Host`` are the gateway's.
    """
    known = request.get(ORIGIN_KEY) if hasattr(request, "get") else None
    if known:
        return known
    scheme = request.headers.get("X-Forwarded-Proto", "").split(",", 1)[0].strip().lower() or request.scheme
    host = request.headers.get("X-Forwarded-Host", "").split(",", 1)[0].strip() or request.host
    return f"{scheme}://{host}"


def same_origin(headers: Mapping[str, str], origin: str) -> bool:
    """A browser says this request comes from a page of ``origin`` itself.

    ``Origin`` (sent by browsers on every cross-origin and every same-origin
    non-GET fetch or form post) must name exactly our scheme, host and port;
    without it, ``Sec-Fetch-Site`` must be ``same-origin`` (``same-site`` is a
    page on another port or subdomain: not us). Neither header: no proof.
    """
    claimed = headers.get("Origin")
    if claimed is not None:
        if claimed.strip().lower() == "null":
            return False
        scheme, _, host = claimed.strip().partition("://")
        ours = _normal_origin(*origin.split("://", 1)) if "://" in origin else None
        return ours is not None and _normal_origin(scheme, host) == ours
    return headers.get("Sec-Fetch-Site", "").strip().lower() == "same-origin"


def write_allowed(request, form: Mapping | None = None) -> bool:
    """A write authenticated by the login cookie: its CSRF token, or a same-origin browser request."""
    token = (form or {}).get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if token is not None and not isinstance(token, str):
        token = None
    if check_csrf(request.cookies.get(COOKIE), token, secret_of(request.app)):
        return True
    return same_origin(request.headers, request_origin(request))


def new_login_nonce() -> str:
    return _b64(os.urandom(16))


def login_token(nonce: str, secret: bytes) -> str:
    """The login form's token, bound to its ``photcal_login`` cookie (a page elsewhere knows neither)."""
    return _b64(hmac.new(secret, b"login|" + nonce.encode(), hashlib.sha256).digest()[:18])


def check_login_token(nonce: str | None, token: str | None, secret: bytes) -> bool:
    if not nonce or not token or len(nonce) > 64:
        return False
    return hmac.compare_digest(login_token(nonce, secret), token)


class CookieSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTCAL_", extra="ignore")

    #: 1 = the login cookie is always Secure (TLS in front of everything, whatever the headers say)
    cookie_secure: bool = False


_forced_secure: bool | None = None


def cookie_secure(request) -> bool:
    """Secure when the client used https (as :func:`request_origin` knows it) or when forced."""
    global _forced_secure
    if _forced_secure is None:
        _forced_secure = CookieSettings().cookie_secure
    return _forced_secure or request_origin(request).startswith("https://")
