"""Events' names and positions, at the data layer every entry point shares (real nx-27017).

Squatting (an impostor naming its event after a real one), names matching
several events, unprintable names, and a new event at an existing one's position.
"""

from __future__ import annotations

import pytest

from shared.db import connect_database
from shared.db.alerts import Alert, add_alert, alerts_near, find_alert, register_alert, upsert_alert
from shared.errors import BadInput, Conflict
from shared.validation import MAX_ALERT_NAME, clean_comment, csv_safe_text, validate_alert_name

pytestmark = pytest.mark.integration

REAL = "ivo://gaia/alerts#Gaia99zzz"
FAKE = "ivo://evil/fake#1"


@pytest.fixture
async def db(mongo_proc, fresh_db_name):
    database = connect_database(mongo_proc.url, fresh_db_name)
    await database.ensure_indexes()
    yield database
    await database.close()


async def test_a_name_another_event_has_is_refused_either_way_round(db):
    await add_alert(db, Alert(ivorn=FAKE, name="Gaia99zzz", ra=10.0, dec=20.0))
    with pytest.raises(Conflict) as e:  # the real one's fragment is the impostor's name
        await add_alert(db, Alert(ivorn=REAL, name="Gaia99zzz", ra=10.0, dec=20.0))
    assert e.value.code == "alert_name_taken" and e.value.http_status == 409 and FAKE in e.value.message
    with pytest.raises(Conflict) as e:  # no name: its fragment is its name
        await add_alert(db, Alert(ivorn="ivo://other/broker#Gaia99zzz", ra=30.0, dec=20.0))
    assert e.value.code == "alert_name_taken"
    # case counts, as in ivorns (and alert_name= looks up the same way)
    await add_alert(db, Alert(ivorn="ivo://gaia/alerts#GAIA99ZZZ", ra=30.0, dec=20.0))


async def test_the_fragment_of_an_ivorn_counts_as_a_used_name(db):
    await add_alert(db, Alert(ivorn=REAL, ra=10.0, dec=20.0))
    with pytest.raises(Conflict) as e:
        await add_alert(db, Alert(ivorn=FAKE, name="Gaia99zzz", ra=50.0, dec=20.0))
    assert e.value.code == "alert_name_taken" and REAL in e.value.message
    await add_alert(db, Alert(ivorn="ivo://gaia/alerts#Gaia99zz\u00e9", ra=10.0, dec=20.0))
    with pytest.raises(Conflict):  # a decomposed accent is the same name
        await add_alert(db, Alert(ivorn=FAKE, name="Gaia99zze\u0301", ra=50.0, dec=20.0))
    # an import of the same ivorn is an update, not a squat
    _, created = await upsert_alert(db, Alert(ivorn=REAL, name="Gaia99zzz", ra=10.0, dec=20.0))
    assert created is False
    with pytest.raises(Conflict):
        await upsert_alert(db, Alert(ivorn=FAKE, name="Gaia99zzz", ra=50.0, dec=20.0))


async def test_a_name_several_events_answer_to_is_an_error_listing_them(db):
    """Events stored before names were checked: the read refuses to guess (on main it served the first)."""
    await db.alerts.insert_one(Alert(ivorn=FAKE, name="Gaia99zzz", ra=10.0, dec=20.0, alert_id=1).model_dump())
    await db.alerts.insert_one(Alert(ivorn=REAL, name="Gaia99zzz", ra=10.0, dec=20.0, alert_id=2).model_dump())
    with pytest.raises(Conflict) as e:
        await find_alert(db, "Gaia99zzz")
    assert e.value.code == "ambiguous_alert_name" and FAKE in e.value.message and REAL in e.value.message
    assert (found := await find_alert(db, REAL)) is not None and found.ivorn == REAL  # the ivorn always works
    # and no new one may take the name either (the old documents get their keys first)
    with pytest.raises(Conflict):
        await add_alert(db, Alert(ivorn="ivo://other/x#Gaia99zzz", ra=1.0, dec=1.0))


async def test_a_unique_name_and_an_ivorn_fragment_are_found(db):
    await add_alert(db, Alert(ivorn="ivo://gaia/alerts#Gaia21eeo", name="Gaia21eeo", ra=10.0, dec=20.0))
    await add_alert(db, Alert(ivorn="ivo://tns/objects#2023abc", ra=11.0, dec=20.0))
    assert (found := await find_alert(db, "Gaia21eeo")) is not None and found.ivorn == "ivo://gaia/alerts#Gaia21eeo"
    assert (found := await find_alert(db, "2023abc")) is not None and found.ivorn == "ivo://tns/objects#2023abc"
    assert await find_alert(db, "nothing") is None


@pytest.mark.parametrize(
    "name", ["a\x00b", "two\nlines", "gaia\u202eexe.txt", "tab\there", "x" * 2650, "zero\u200bwidth"]
)
async def test_unprintable_or_long_names_are_refused(db, name):
    with pytest.raises(BadInput) as e:
        await add_alert(db, Alert(ivorn="ivo://x/y#n", name=name, ra=10.0, dec=20.0))
    assert e.value.code == "bad_alert_name" and e.value.http_status == 400 and "printable" in e.value.message
    assert await db.alerts.count_documents({}) == 0


async def test_an_event_at_another_ones_position_is_added_with_a_warning_naming_it(db):
    await add_alert(db, Alert(ivorn="ivo://gaia/alerts#Gaia23abc", ra=359.9999, dec=-30.0))
    # 0.4 arcsec away, across RA 0/360
    ra = (359.9999 + 0.4 / 3600 / 0.8660254 - 360.0) % 360.0
    stored, warnings = await register_alert(db, Alert(ivorn="ivo://other/broker#AT2023x", ra=ra, dec=-30.0))
    assert stored.alert_id is not None
    assert warnings == ["ivo://gaia/alerts#Gaia23abc is 0.4 arcsec away"]
    _, warnings = await register_alert(db, Alert(ivorn="ivo://other/broker#Far", ra=ra, dec=-29.99))
    assert warnings == []  # 36 arcsec


async def test_near_the_pole_every_ra_is_near(db):
    await add_alert(db, Alert(ivorn="ivo://a/b#Pole1", ra=0.0, dec=89.9999))
    near = await alerts_near(db, 180.0, 89.9999, 5.0)
    assert [a.ivorn for a, _ in near] == ["ivo://a/b#Pole1"] and near[0][1] == pytest.approx(0.72, abs=0.01)


def test_name_rule_pure():
    assert validate_alert_name("  Gaia21eeo ") == "Gaia21eeo"
    assert validate_alert_name("") is None and validate_alert_name(None) is None
    assert validate_alert_name("SN 2023ixf (M101)") == "SN 2023ixf (M101)"
    assert validate_alert_name("x" * MAX_ALERT_NAME)
    with pytest.raises(ValueError):
        validate_alert_name("x" * (MAX_ALERT_NAME + 1))


def test_comments_lose_control_characters_and_escapes():
    assert clean_comment("ok\x00 \x1b[31mred\x1b[0m\ttab\nline\u202e") == "ok red tab line"
    assert clean_comment("a\u00a0b\u200bc\U000e0001d\ue000") == "a bcd\ue000"  # no-break space, zero width, tag
    assert clean_comment('  seeing 2"  ') == 'seeing 2"'
    assert clean_comment(None) == ""


@pytest.mark.parametrize("text", ['=HYPERLINK("http://evil")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_text_cells_are_neutralised(text):
    assert csv_safe_text(text) == "'" + text


def test_numbers_and_plain_text_stay():
    assert csv_safe_text(-1.25) == -1.25 and csv_safe_text(-3) == -3
    assert csv_safe_text("Gaia21eeo") == "Gaia21eeo" and csv_safe_text("") == ""


async def test_events_stored_before_the_name_keys_get_them_at_start(mongo_proc, fresh_db_name):
    """An old alert known only by its ivorn's fragment: after the start's backfill that name is taken."""
    database = connect_database(mongo_proc.url, fresh_db_name)
    try:
        await database.alerts.insert_one(
            Alert(ivorn="ivo://tns/objects#2023old", ra=10.0, dec=20.0, alert_id=1).model_dump()
        )
        await database.ensure_indexes()
        old = await database.alerts.find_one({"ivorn": "ivo://tns/objects#2023old"})
        assert old is not None and old["fragment_key"] == "2023old"
        with pytest.raises(Conflict) as e:
            await add_alert(database, Alert(ivorn=FAKE, name="2023old", ra=50.0, dec=20.0))
        assert e.value.code == "alert_name_taken"
        assert (
            found := await find_alert(database, "2023old")
        ) is not None and found.ivorn == "ivo://tns/objects#2023old"
    finally:
        await database.close()
