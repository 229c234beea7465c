"""The Python client (clients/python, photcal_client) against a real stack: `photcal run`, nats-server, nx-27017."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from astropy import units as u
from astropy.time import Time
from photcal_client import (
    AuthenticationError,
    CalibrationRefused,
    Client,
    Conflict,
    NotFound,
    QueuedUpload,
    StillCalibrating,
    UploadResult,
)

from tests.integration.conftest import field_dir
from tools.devstack import Stack, standalone_stack, stop_all

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")
IVORN = "ivo://gaia/alerts#SimClient"
NAME = "SimClient"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A stack with the north_V field loaded, an observatory and the field's alert."""
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("client"),
        PHOTCAL_MONGO_DB="client",
        PHOTCAL_UPLOAD_TIMEOUT="60",
    )
    try:
        stack.truth = stack.load_field(FIELD)
        stack.add_observatory("Client Observatory")
        stack.add_observatory("Other Observatory")
        a = stack.truth["alert"]
        stack.cli("alert", "add", "--ivorn", IVORN, "--ra", str(a["ra"]), "--dec", str(a["dec"]), "--name", NAME)
        stack.start()
        yield stack
    finally:
        stop_all(stack, servers)


@pytest.fixture
def client(site: Stack):
    with Client(site.url, site.hashtags["Client Observatory"], timeout=90) as c:
        yield c


def few_star_catalogue(folder: Path, n: int = 8) -> bytes:
    """The field's catalogue cut to its ``n`` brightest sources: they match reference stars, too few pass the cuts."""
    lines = (FIELD / "sex_ascii_head.cat").read_text().splitlines()
    header = [line for line in lines if line.startswith("#")]
    rows = [line for line in lines if line.strip() and not line.startswith("#")]
    brightest = sorted(rows, key=lambda row: float(row.split()[5]))[:n]  # column 6: MAG_AUTO
    return ("\n".join(header + brightest) + "\n").encode()


def test_upload_waits_for_the_true_magnitude_as_a_typed_result(site: Stack, client: Client):
    truth = site.truth
    result = client.upload(FIELD / "sex_ascii_head.cat", IVORN, 60010.5, exptime=60, dry_run=True, plot=False)
    assert isinstance(result, UploadResult) and result.ok
    assert (result.survey, result.filter) == (truth["best"]["survey"], truth["best"]["band"])
    assert result.mag is not None and abs(result.mag - truth["transient"]["mag"]) < 0.1
    assert result.mag_err is not None and 0 < result.mag_err < 0.2
    assert result.zeropoint is not None and abs(result.zeropoint - truth["zeropoint"]) < 0.1
    assert result.mag_system == "Vega"  # APASS V
    assert result.dry_run and not result.stored and result.followup_id is None
    assert len(result.upload_id) == 32 and result.mjd == 60010.5
    assert client.lightcurve(IVORN)["mjd"].tolist() == []  # a dry run stores nothing


def test_upload_without_waiting_then_polling_gives_the_stored_point(site: Stack, client: Client):
    queued = client.upload((FIELD / "sex_cpcs.cat").read_bytes(), IVORN, 60020.25, wait=False, filename="sex.cat")
    assert isinstance(queued, QueuedUpload)
    assert queued.status_url == f"/api/v1/uploads/{queued.upload_id}"
    result = client.result(queued.upload_id, timeout=60)
    assert result.ok and result.stored and isinstance(result.followup_id, int)
    assert result.upload_id == queued.upload_id
    status = client.status(queued.upload_id)
    assert status.state == "done" and status.result is not None and status.result.followup_id == result.followup_id
    # the same event, observatory and MJD again: photcal's code and status, the stored point named
    with pytest.raises(Conflict) as refused:
        client.upload(FIELD / "sex_cpcs.cat", IVORN, 60020.25)
    assert refused.value.code == "duplicate_datapoint" and refused.value.status == 409
    assert str(result.followup_id) in refused.value.message
    assert refused.value.body["followup_id"] == result.followup_id  # machine-readable too


def test_refusals_raise_photcal_error_codes(site: Stack, client: Client, tmp_path: Path):
    few = few_star_catalogue(tmp_path)
    with pytest.raises(CalibrationRefused) as too_few:
        client.upload(few, IVORN, 60030.5, filename="few.cat")
    assert too_few.value.code == "too_few_stars" and too_few.value.status == 400
    assert too_few.value.result is not None and too_few.value.result.upload_id == too_few.value.upload_id
    # the same refusal when polled: result() raises what upload() would have
    queued = client.upload(few, IVORN, 60031.5, filename="few.cat", wait=False)
    with pytest.raises(CalibrationRefused) as polled:
        client.result(queued.upload_id, timeout=60)
    assert polled.value.code == "too_few_stars" and polled.value.upload_id == queued.upload_id
    assert client.status(queued.upload_id).state == "failed"
    with pytest.raises(NotFound) as unknown:
        client.upload(FIELD / "sex_cpcs.cat", "ivo://gaia/alerts#NoSuchEvent", 60032.5)
    assert (unknown.value.code, unknown.value.status) == ("unknown_event", 404)
    assert "POST /api/v1/alerts" in unknown.value.message  # how to fix it, as the server says
    with pytest.raises(AuthenticationError) as stranger:
        Client(site.url, "not-a-hashtag").upload(FIELD / "sex_cpcs.cat", IVORN, 60033.5)
    assert (stranger.value.code, stranger.value.status) == ("bad_hashtag", 401)


def test_lightcurve_is_a_table_with_units_time_and_magnitude_system(site: Stack, client: Client):
    stored = client.upload(FIELD / "sex_fits1.fits", IVORN, 60040.125, exptime=180, comment="from the client")
    table = client.lightcurve(IVORN)
    assert table.meta["ivorn"] == IVORN and table.meta["name"] == NAME
    row = table[list(table["followup_id"]).index(stored.followup_id)]
    assert isinstance(table["time"], Time) and table["time"].scale == "utc"
    assert abs(row["time"].mjd - 60040.125) < 1e-9
    assert table["mag"].unit == u.mag and table["mag_err"].unit == u.mag and table["limit_mag"].unit == u.mag
    assert table["exptime"].unit == u.s and row["exptime"] == 180
    assert (row["mag"] * table["mag"].unit).to_value(u.mag) == pytest.approx(stored.mag)
    assert (row["survey"], row["filter"], row["mag_system"]) == ("APASS", "V", "Vega")
    assert row["comment"] == "from the client"
    assert list(table["mjd"]) == sorted(table["mjd"])
    # by name: looked up among the alerts
    by_name = client.lightcurve(NAME)
    assert list(by_name["followup_id"]) == list(table["followup_id"])
    assert [a.ivorn for a in client.alerts(NAME.lower())] == [IVORN]
    a = site.truth["alert"]
    assert [x.ivorn for x in client.alerts(ra=a["ra"] + 0.5 / 3600, dec=a["dec"], radius=1 / 3600)] == [IVORN]
    assert client.alerts(ra=a["ra"] + 1.0, dec=a["dec"]) == []


def test_delete_hides_the_point_and_only_its_observatory_may(site: Stack, client: Client):
    stored = client.upload(FIELD / "sex_ldac.fits", IVORN, 60050.75, plot=False)
    assert stored.followup_id is not None
    other = Client(site.url, site.hashtags["Other Observatory"])
    with pytest.raises(AuthenticationError) as forbidden:
        other.delete(stored.followup_id, "not ours")
    assert forbidden.value.status == 403
    deleted = client.delete(stored.followup_id, "clouds")
    assert (deleted.followup_id, deleted.ivorn, deleted.mjd) == (stored.followup_id, IVORN, 60050.75)
    assert stored.followup_id not in list(client.lightcurve(IVORN)["followup_id"])
    with pytest.raises(NotFound) as gone:
        client.delete(stored.followup_id, "again")
    assert gone.value.status == 404


@pytest.fixture(scope="module")
def stalled(tmp_path_factory):
    """A stack whose worker does not run (uploads stay queued), slow to answer and strict on reads."""
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("stalled"),
        PHOTCAL_MONGO_DB="stalled",
        PHOTCAL_UPLOAD_TIMEOUT="2",
        PHOTCAL_RATE_LIMIT_READ_PER_S="1",
        PHOTCAL_RATE_LIMIT_READ_BURST="2",
    )
    try:
        stack.add_observatory()
        stack.cli("alert", "add", "--ivorn", IVORN, "--ra", "150.0857", "--dec", "30.0449", "--name", NAME)
        stack.start(without=("calibrate",))
        yield stack
    finally:
        stop_all(stack, servers)


def test_a_server_timeout_is_still_calibrating_and_polling_honours_retry_after(stalled: Stack):
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    client = Client(stalled.url, stalled.hashtags["Test Observatory"], sleep=sleep, max_retries=10)
    with pytest.raises(StillCalibrating) as waiting:
        client.upload(FIELD / "sex_cpcs.cat", IVORN, 60060.5)
    assert waiting.value.status == 504 and waiting.value.code == "timeout"
    upload_id = waiting.value.upload_id
    assert upload_id and len(upload_id) == 32
    # polled faster than 1 read/s: the gateway answers 429 and the client waits its Retry-After
    started = time.monotonic()
    with pytest.raises(StillCalibrating) as still:
        client.result(upload_id, timeout=4, first_poll=0.05)
    assert still.value.upload_id == upload_id and still.value.status is None
    # the back-off's waits are fractions of a second; a 429's Retry-After is whole seconds, at least 1
    assert any(s >= 1.0 and s.is_integer() for s in slept), slept
    assert time.monotonic() - started < 30
    assert client.status(upload_id).state == "queued"
