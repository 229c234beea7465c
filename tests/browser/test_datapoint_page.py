"""Click a light-curve point: its datapoint page opens (calibration, every candidate, plot, provenance, history);
the "my uploads" page lists the observatory's uploads with a refused one's reason. Screenshots for a reviewer."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

from tests.browser.conftest import FIELD, login, shot

pytestmark = pytest.mark.integration
IVORN = "ivo://gaia/alerts#WebDatapoint"


def _upload(web, catalogue: bytes, mjd: float) -> requests.Response:
    return requests.post(
        f"{web.url}/api/v1/uploads",
        data={
            "hashtag": web.hashtag,
            "EventID": IVORN,
            "MJD": str(mjd),
            "expTime": "60",
            "noPlot": "0",
            "dryRun": "0",
            "outputFormat": "json",
        },
        files={"sexCat": ("field.cat", catalogue)},
        timeout=120,
    )


@pytest.fixture(scope="module")
def stored(web) -> dict:
    a = web.truth["alert"]
    r = requests.post(
        f"{web.url}/api/v1/alerts",
        json={"ivorn": IVORN, "ra": a["ra"], "dec": a["dec"], "url": "https://example.org/x", "hashtag": web.hashtag},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    catalogue = (FIELD / "sex_ascii_head.cat").read_bytes()
    ok = _upload(web, catalogue, 60200.5)
    assert ok.status_code == 200, ok.text
    lines = catalogue.decode().splitlines()
    rows = [line for line in lines if line.strip() and not line.startswith("#")]
    few = [line for line in lines if line.startswith("#")] + sorted(rows, key=lambda r: float(r.split()[5]))[:8]
    refused = _upload(web, ("\n".join(few) + "\n").encode(), 60201.5)
    assert refused.status_code == 400 and refused.json()["error"] == "too_few_stars", refused.text
    return ok.json()


def test_clicking_a_chart_point_opens_its_datapoint_page(page, web, stored):
    page.goto("/lightcurve/" + quote(IVORN, safe=""))
    page.wait_for_selector("#chart canvas")
    # where the point is drawn, in page coordinates (uPlot's own scales)
    x, y = page.evaluate(
        """() => { const u = window.photcalChart, r = u.over.getBoundingClientRect();
                   const k = u.data.findIndex((col, i) => i > 0 && col.some(v => v !== null));
                   const i = u.data[k].findIndex(v => v !== null);
                   return [r.left + u.valToPos(u.data[0][i], "x"), r.top + u.valToPos(u.data[k][i], "y")]; }"""
    )
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.up()
    page.wait_for_url(f"**/datapoints/{stored['followup_id']}")
    assert page.inner_text("h1") == f"Datapoint {stored['followup_id']}"
    assert f"{stored['mag']:.3f}" in page.inner_text("#dp-mag")
    assert page.locator("#dp-candidates tbody tr").count() == len(stored["candidates"])
    assert page.locator("#dp-candidates tr.chosen").count() == 1
    assert "sha256" in page.inner_text("#dp-provenance")
    page.wait_for_function("() => { const i = document.getElementById('dp-plot'); return i && i.naturalWidth > 100; }")
    shot(page, "datapoint_page")


def test_my_uploads_page_shows_the_refused_upload_with_its_reason_and_plot(page, web, stored):
    login(page, web.hashtag, "/uploads")
    failed = page.locator('#uploads-table tr[data-state="failed"]').first
    assert "too_few_stars" in failed.inner_text() and "too few calibration stars" in failed.inner_text()
    href = failed.locator("a.plot").get_attribute("href")
    assert href and href.startswith("/plots/")
    assert requests.get(web.url + href, timeout=30).headers["Content-Type"] == "image/png"
    shot(page, "my_uploads")
    page.goto(href)
    shot(page, "failed_calibration_plot", full_page=False)
