"""The network's clients, as their code calls CPCS (only the base URL changes).

- ``curl_*``: observers' shell scripts (VaST's CPCS upload, the CPCS manual's
  command, the ``newevent`` script): ``curl -F`` multipart forms.
- ``bhtom_*``: BHTOM's Python (``requests``): the upload with ``files={'sexCat': f}``
  and extra fields (``fits_id``), read by key at 200/201; the light curve with a
  ``hashtag`` cookie, read with ``zip`` over the parallel arrays.
- ``harvest_*``: catalogue harvesters: ``list_of_alerts?format=json&num=...&hashtag=``,
  then ``get_alert_lc_data?alert_id=``.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import requests


def curl(url: str, *args: str) -> tuple[int, str]:
    out = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", *args, url], capture_output=True, text=True, timeout=120
    )
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def curl_upload(
    base: str,
    catalogue: Path,
    hashtag: str | None,
    event: str,
    mjd: str,
    *extra: str,
    output: str = "json",
    dry_run: str | None = "1",
    no_plot: str | None = "1",
) -> tuple[int, str]:
    """VaST's call: ``-F sexCat="@CPCS.cat;filename=CPCS.cat"``, noPlot, forceFilter, dryRun, outputFormat."""
    args = [
        "-F",
        "matchDist=2",
        "-F",
        f"EventID={event}",
        "-F",
        f"sexCat=@{catalogue};filename=CPCS.cat",
        "-F",
        f"MJD={mjd}",
        "-F",
        "expTime=180",
        "-F",
        f"outputFormat={output}",
    ]
    if hashtag is not None:
        args += ["-F", f"hashtag={hashtag}"]
    if dry_run is not None:
        args += ["-F", f"dryRun={dry_run}"]
    if no_plot is not None:
        args += ["-F", f"noPlot={no_plot}"]
    return curl(f"{base}/cgi/upload", *args, *extra)


def curl_new_event(
    base: str, hashtag: str, ivorn: str, ra: float, dec: float, url: str = "http://example.org/"
) -> tuple[int, str]:
    """The follow-up scripts' ``make_new_event``: ``curl -F hashtag=... -F EventID=... -F ra= -F dec= -F url=``."""
    return curl(
        f"{base}/cgi/newevent",
        "-F",
        f"hashtag={hashtag}",
        "-F",
        f"EventID={ivorn}",
        "-F",
        f"ra={ra}",
        "-F",
        f"dec={dec}",
        "-F",
        f"url={url}",
    )


def bhtom_upload(
    base: str,
    catalogue: Path,
    hashtag: str,
    event: str,
    mjd: float,
    *,
    force_filter: str = "no",
    dry_run: int = 0,
    **extra,
) -> requests.Response:
    """BHTOM's ``add_task_to_cpcs_queue``: data dict plus ``files={'sexCat': file}``."""
    data = {
        "MJD": mjd,
        "EventID": event,
        "expTime": 180.0,
        "matchDist": 2,
        "dryRun": dry_run,
        "forceFilter": force_filter,
        "fits_id": 1234,
        "hashtag": hashtag,
        "outputFormat": "json",
    } | extra
    with open(catalogue, "rb") as file:
        return requests.post(base + "/cgi/upload", data, files={"sexCat": file}, timeout=120)


BHTOM_UPLOAD_KEYS = (
    "image_link",
    "mag",
    "mag_err",
    "ra",
    "dec",
    "zeropoint",
    "outlier_fraction",
    "scatter",
    "npoints",
    "followup_id",
    "filter",
    "survey",
)


def bhtom_reads_upload(response: requests.Response) -> dict:
    """What BHTOM stores from a successful upload (it reads these keys, nothing else)."""
    assert response.status_code in (200, 201), response.text
    json_data = json.loads(response.text)
    return {key: json_data[key] for key in BHTOM_UPLOAD_KEYS}


def bhtom_error_shown(response: requests.Response) -> str | None:
    """BHTOM shows ``Cpcs error: <body>`` when the body is under 100 characters, else retries."""
    body = response.content.decode()
    return f"Cpcs error: {body}" if len(body) <= 100 else None


def bhtom_lightcurve(base: str, hashtag: str, cpcs_name: str) -> list[dict]:
    """BHTOM's ``update_cpcs_lc``: the ivorn unencoded in the query, the hashtag as a cookie."""
    response = requests.get(
        f"{base}/get_alert_lc_data?alert_name={cpcs_name}", cookies={"hashtag": hashtag}, timeout=30
    )
    response.raise_for_status()
    lc_data = json.loads(response.text)
    points = []
    for mjd, magerr, observatory, caliberr, mag, catalog, filter, id in zip(
        lc_data["mjd"],
        lc_data["magerr"],
        lc_data["observatory"],
        lc_data["caliberr"],
        lc_data["mag"],
        lc_data["catalog"],
        lc_data["filter"],
        lc_data["id"],
    ):
        if float(magerr) == -1:  # "Errors are marked with magerr==-1 in CPCS": limits are skipped
            continue
        points.append(
            {
                "jd": float(mjd) + 2400000.5,
                "magnitude": float(mag),
                "error": math.sqrt(float(magerr) ** 2 + float(caliberr) ** 2),
                "filter": f"{filter}({catalog})",
                "observatory": observatory,
                "id": id,
            }
        )
    return points


def harvest_alerts(base: str, hashtag: str, num: int = 100000) -> list[dict]:
    url = f"{base}/list_of_alerts?format=json&num={num}&published=1&observed_only=1&hashtag={hashtag}"
    alertindex = json.loads(requests.get(url, timeout=30).text)
    return [
        {"id": x["id"], "name": x["ivorn"].split("/")[-1].strip(), "ra": str(x["ra"]), "dec": str(x["dec"])}
        for x in alertindex
    ]


def harvest_photometry(base: str, hashtag: str, alert_id: int) -> list[tuple]:
    """``get_alert_lc_data?alert_id=ID&hashtag=...``; limits have no error (magerr <= 0)."""
    session = requests.Session()
    cpcsalert = json.loads(
        session.get(f"{base}/get_alert_lc_data?alert_id={alert_id}&hashtag={hashtag}", timeout=30).text
    )
    errs = [x if float(x) > 0.0 else "" for x in cpcsalert["magerr"]]
    return list(zip(cpcsalert["mjd"], cpcsalert["mag"], errs, cpcsalert["filter"], cpcsalert["observatory"]))
