"""Validation of user-supplied identifiers shared by the gateway, the CLI and the models."""

from __future__ import annotations

import re
import unicodedata

#: ivo://authority/path#fragment (IVOA identifiers); Gaia's are ivo://gaia/alerts#Gaia21eeo
_IVORN = re.compile(r"^ivo://[A-Za-z0-9][\w.\-~]*(/[\w.\-~%/:+=@]*)?(#[\w.\-~%/:+=@]+)?$")
MAX_IVORN = 256


def validate_ivorn(value: str) -> str:
    value = (value or "").strip()
    if len(value) > MAX_IVORN or not _IVORN.match(value):
        raise ValueError("an event id (ivorn) looks like ivo://authority/path#name, e.g. ivo://gaia/alerts#Gaia21eeo")
    return value


MAX_URL = 2048


def validate_event_url(value: str | None) -> str | None:
    """An event's web page: http(s) only, so that no page ever links a ``javascript:`` URL."""
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    if len(value) > MAX_URL or not value.lower().startswith(("http://", "https://")) or not value.isprintable():
        raise ValueError("url is the event's web page, starting http:// or https://")
    return value


MAX_ALERT_NAME = 100

#: characters a name never has: controls (C0, C1, DEL), line and paragraph separators and the
#: invisible formatting ones (the bidirectional overrides and isolates U+202A-U+202E, U+2066-U+2069,
#: zero-width characters): str.isprintable() refuses them all
ALERT_NAME_RULE = (
    f"an event name is 1 to {MAX_ALERT_NAME} printable characters: no control characters, line breaks, "
    "or invisible/bidirectional-override characters (e.g. Gaia21eeo)"
)


def validate_alert_name(value: str | None) -> str | None:
    """An event's short name, as shown in lists and matched by ``alert_name``: printable, at most 100 characters.

    Surrounding spaces are dropped; an empty name is no name (None).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(ALERT_NAME_RULE)
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_ALERT_NAME or not value.isprintable():
        raise ValueError(ALERT_NAME_RULE)
    return value


def alert_name_key(name: str) -> str:
    """What two names are compared by: the name in Unicode canonical form (NFC), so that a composed and a
    decomposed accent are one name. Case counts, as it does for ivorns (``alert_name=`` looks up by this key
    too: a name that differs in case is another name, not a way to reach the event)."""
    return unicodedata.normalize("NFC", name)


MAX_COMMENT = 2000

_STRIPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}

#: an ANSI/VT100 escape sequence (CSI ... final byte, or ESC and one character)
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")


def clean_comment(value: str | None) -> str:
    """An observer's free text (an upload's comment, a delete's reason), safe to store and show.

    Control characters are **stripped**, not refused (CPCS clients send what the
    observer typed, and a stray tab should not cost the upload): ANSI escape
    sequences whole, line breaks and tabs become a space, every other control,
    invisible or bidirectional-override character (anything ``str.isprintable``
    refuses but the space) is dropped; surrounding spaces too. The length
    limit (:data:`MAX_COMMENT`) is checked by the caller, on what was sent.
    """
    if not value:
        return ""
    text = _ANSI.sub("", str(value))
    text = re.sub(r"[\t\n\r\v\f\x85\u2028\u2029]+", " ", text)
    # controls, format characters (bidi overrides, zero-width), separators other than the space, lone
    # surrogates; unassigned and private-use characters stay (a newer Unicode than Python's is no threat)
    kept = []
    for c in text:
        category = unicodedata.category(c)
        if category == "Zs":
            kept.append(" ")  # a no-break or thin space is a space
        elif category not in _STRIPPED_CATEGORIES:
            kept.append(c)
    return "".join(kept).strip()


#: a cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe_text(value: object) -> object:
    """A text cell of a CSV export, neutralised as OWASP recommends: a leading ``'`` before = + - @ TAB CR.

    Only strings are touched: numbers (a negative magnitude, a negative
    colour) stay numbers in numeric columns.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
