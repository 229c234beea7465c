"""`photcal alerts import alerts.csv` against the real nx-27017: creates or updates, idempotently."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pymongo import MongoClient

pytestmark = pytest.mark.integration

PHOTCAL = [sys.executable, "-m", "photcal_cli.main"]

# exactly as Gaia Science Alerts publish it: spaces after the header's commas,
# quoted strings, commas inside the comment
HEADER = "#Name, Date, RaDeg, DecDeg, AlertMag, HistoricMag, HistoricStdDev, Class, Published, Comment, TNSid\n"
ROWS = [
    'Gaia21eeo,2021-09-07 02:07:38,111.55315,-39.30836,18.70,20.22,0.64,"unknown",2021-09-09 08:19:08,'
    '"~2 mag brightening in a faint Gaia source",AT2021yjn\n',
    'Gaia21eep,2021-09-07 05:11:02,281.90551,2.01233,17.55,,,"CV",2021-09-09 08:21:40,'
    '"outburst, in a known CV, second this year",AT2021yjo\n',
    'Gaia21eeq,2021-09-08 11:00:00,not-a-number,12.0,19.1,19.3,0.1,"unknown",2021-09-09 09:00:00,"broken row",\n',
]


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*PHOTCAL, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"photcal {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def env(mongo_proc, tmp_path, fresh_db_name):
    e = dict(os.environ)
    e.update(
        PHOTCAL_MONGO_URL=mongo_proc.url,
        PHOTCAL_MONGO_DB=fresh_db_name,
        PHOTCAL_DATA_DIR=str(tmp_path / "data"),
        PHOTCAL_HASHTAG_PEPPER="test-pepper",
    )
    return e


def _alerts(env) -> dict[str, dict]:
    client: MongoClient[dict] = MongoClient(env["PHOTCAL_MONGO_URL"], serverSelectionTimeoutMS=5000)
    try:
        docs = list(client[env["PHOTCAL_MONGO_DB"]].alerts.find({}, {"_id": 0}))
    finally:
        client.close()
    return {d["ivorn"]: d for d in docs}


def test_alerts_import_is_idempotent(env, tmp_path):
    csv = tmp_path / "alerts.csv"
    csv.write_text(HEADER + "".join(ROWS))

    out = _cli(env, "alerts", "import", str(csv))
    assert "2 alerts created, 0 updated, 1 rows skipped" in out, out
    first = _alerts(env)
    assert set(first) == {"ivo://gaia/alerts#Gaia21eeo", "ivo://gaia/alerts#Gaia21eep"}
    eeo = first["ivo://gaia/alerts#Gaia21eeo"]
    assert eeo["name"] == "Gaia21eeo"
    assert eeo["ra"] == pytest.approx(111.55315) and eeo["dec"] == pytest.approx(-39.30836)
    assert eeo["url"] and "Gaia21eeo" in eeo["url"]
    assert eeo["extra"]["Comment"] == "~2 mag brightening in a faint Gaia source"
    assert eeo["extra"]["TNSid"] == "AT2021yjn"
    assert first["ivo://gaia/alerts#Gaia21eep"]["extra"]["Comment"] == "outburst, in a known CV, second this year"
    assert len({d["alert_id"] for d in first.values()}) == 2

    # the same file again changes nothing
    out = _cli(env, "alerts", "import", str(csv))
    assert "0 alerts created, 2 updated, 1 rows skipped" in out, out
    assert _alerts(env) == first

    # a later alerts.csv: one alert updated (new class), one new; ids and creation times kept
    later = (
        ROWS[0].replace('"unknown"', '"YSO"')
        + ROWS[1]
        + ('Gaia21eer,2021-09-10 01:00:00,10.5,-5.25,16.0,17.0,0.2,"unknown",2021-09-11 00:00:00,"new one",\n')
    )
    csv.write_text(HEADER + later)
    out = _cli(env, "alerts", "import", str(csv))
    assert "1 alerts created, 2 updated, 0 rows skipped" in out, out
    now = _alerts(env)
    assert len(now) == 3
    assert now["ivo://gaia/alerts#Gaia21eeo"]["extra"]["Class"] == "YSO"
    for ivorn, doc in first.items():
        assert now[ivorn]["alert_id"] == doc["alert_id"]
        assert now[ivorn]["created"] == doc["created"]
    assert now["ivo://gaia/alerts#Gaia21eer"]["ra"] == pytest.approx(10.5)


def test_alerts_import_refuses_another_csv(env, tmp_path):
    bad = tmp_path / "other.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    done = subprocess.run(
        [*PHOTCAL, "alerts", "import", str(bad)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: not a Gaia alerts.csv"), done.stderr
    assert _alerts(env) == {}
