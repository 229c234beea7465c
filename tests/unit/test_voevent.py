"""A VOEvent 2.0 document read into its event: ivorn, position, page; malformed and incomplete ones refused."""

from __future__ import annotations

import pytest

from shared.contracts.errors import ErrorCode
from shared.db.alerts import Alert
from shared.errors import BadInput
from shared.usecases.alert_intake import is_unchanged
from shared.voevent import parse_voevent
from tests.conftest import DATA

DOCUMENT = (DATA / "voevents" / "gaia_alert.xml").read_bytes()


def refusal(document: bytes) -> BadInput:
    with pytest.raises(BadInput) as caught:
        parse_voevent(document)
    return caught.value


def test_the_event_of_a_voevent():
    event = parse_voevent(DOCUMENT)
    assert (event.ivorn, event.ra, event.dec) == ("ivo://example.org/transients#AT2026abc", 150.0857, 30.0449)
    assert event.url == "https://example.org/transients/AT2026abc"
    assert event.extra == {
        "source": "voevent",
        "voevent_role": "observation",
        "voevent_date": "2026-12-01T03:04:05",
        "position_error_deg": 0.0003,
    }


def test_without_a_reference_the_page_is_the_descriptions_url():
    event = parse_voevent(
        DOCUMENT.replace(b'<Reference uri="https://example.org/transients/AT2026abc" type="url"/>', b"")
    )
    assert event.url == "https://example.org/transients/AT2026abc/notes"


@pytest.mark.parametrize(
    ("document", "code", "says"),
    [
        (b"<VOEvent version='2.0' ivorn='ivo://x/y#z'><WhereWhen>", ErrorCode.BAD_VOEVENT, "not well-formed XML"),
        (b"not xml at all", ErrorCode.BAD_VOEVENT, "not well-formed XML"),
        (b"<alerts><alert/></alerts>", ErrorCode.BAD_VOEVENT, "not <VOEvent>"),
        (DOCUMENT.replace(b'version="2.0"', b'version="1.1"'), ErrorCode.BAD_VOEVENT, "only 2.0"),
        (
            b'<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaa">]><VOEvent version="2.0">&a;</VOEvent>',
            ErrorCode.BAD_VOEVENT,
            "DOCTYPE",
        ),
        (
            DOCUMENT.replace(b'ivorn="ivo://example.org/transients#AT2026abc"', b""),
            ErrorCode.VOEVENT_INCOMPLETE,
            "ivorn",
        ),
        (DOCUMENT.replace(b"<C2>30.0449</C2>", b""), ErrorCode.VOEVENT_INCOMPLETE, "C2 (Dec)"),
        (DOCUMENT.replace(b"Position2D", b"Position3D"), ErrorCode.VOEVENT_INCOMPLETE, "position"),
        (DOCUMENT.replace(b"UTC-ICRS-TOPO", b"UTC-GAL-TOPO"), ErrorCode.VOEVENT_INCOMPLETE, "RA and Dec"),
        (DOCUMENT.replace(b'Position2D unit="deg"', b'Position2D unit="rad"'), ErrorCode.VOEVENT_INCOMPLETE, "degrees"),
    ],
)
def test_a_malformed_or_incomplete_voevent_is_refused_saying_why(document, code, says):
    exc = refusal(document)
    assert exc.code == code and says in exc.message, exc.message


def test_an_alert_is_unchanged_only_when_the_stored_document_says_all_it_says():
    alert = Alert(ivorn="ivo://gaia/alerts#Gaia21eeo", name="Gaia21eeo", ra=111.55, dec=-39.3, extra={"Class": "SN"})
    stored = alert.model_dump() | {"alert_id": 7, "name_key": "Gaia21eeo", "data_version": 3}
    assert is_unchanged(stored, alert)
    assert not is_unchanged(stored | {"extra": {"Class": "unknown"}}, alert)
    assert not is_unchanged(stored | {"dec": -39.31}, alert)
    # a field the source does not give (no url) is not a change
    assert is_unchanged(stored | {"url": "http://example.org/kept"}, alert)
