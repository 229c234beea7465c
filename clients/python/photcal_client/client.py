"""The photcal client: uploads, their results, light curves, alerts and deletes over photcal's JSON API."""

from __future__ import annotations

import math
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, overload

import requests
from astropy import units as u
from astropy.table import MaskedColumn, Table
from astropy.time import Time

from photcal_client.errors import (
    ConnectionFailed,
    PhotcalError,
    PhotcalTimeout,
    RateLimited,
    StillCalibrating,
    error_class,
)
from photcal_client.results import (
    Alert,
    DeletedDatapoint,
    QueuedUpload,
    UploadResult,
    UploadStatus,
    magnitude_system,
)

__all__ = ["Client"]

#: statuses a read may be sent again after: rate limited, a backend briefly away
_RETRY_READ = frozenset({429, 502, 503})
#: an upload is sent again only when the server says it did not take it (429: refused before reading)
_RETRY_UPLOAD = frozenset({429})


class Client:
    """A photcal server at ``url`` (e.g. ``http://127.0.0.1:8080``), as the observatory of ``hashtag``.

    ``timeout`` (s) bounds each HTTP request; an upload that waits for its calibration
    needs it longer than the server's own wait (``PHOTCAL_UPLOAD_TIMEOUT``, 60 s by default).
    A request answered 429 is sent again after the server's ``Retry-After``, up to
    ``max_retries`` times (reads also after a 502/503, with back-off).
    """

    def __init__(
        self,
        url: str,
        hashtag: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 5,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.hashtag = hashtag
        self.timeout = timeout
        self.max_retries = max_retries
        self._session = session or requests.Session()
        self._session.headers.setdefault("Accept", "application/json")
        self._sleep = sleep

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- uploads ---------------------------------------------------------------------------------

    @overload
    def upload(
        self,
        catalogue_or_image: str | Path | bytes,
        event: str,
        mjd: float | None = None,
        *,
        filter: str | None = None,
        exptime: float | None = None,
        match_dist: float | None = None,
        comment: str | None = None,
        dry_run: bool = False,
        plot: bool = True,
        filename: str | None = None,
        wait: Literal[True] = True,
    ) -> UploadResult: ...

    @overload
    def upload(
        self,
        catalogue_or_image: str | Path | bytes,
        event: str,
        mjd: float | None = None,
        *,
        filter: str | None = None,
        exptime: float | None = None,
        match_dist: float | None = None,
        comment: str | None = None,
        dry_run: bool = False,
        plot: bool = True,
        filename: str | None = None,
        wait: Literal[False],
    ) -> QueuedUpload: ...

    def upload(
        self,
        catalogue_or_image: str | Path | bytes,
        event: str,
        mjd: float | None = None,
        *,
        filter: str | None = None,
        exptime: float | None = None,
        match_dist: float | None = None,
        comment: str | None = None,
        dry_run: bool = False,
        plot: bool = True,
        filename: str | None = None,
        wait: bool = True,
    ) -> UploadResult | QueuedUpload:
        """Send a SExtractor catalogue or a FITS frame (a path or its bytes) of ``event`` to be calibrated.

        ``event`` is the alert's ivorn (``ivo://gaia/alerts#Gaia23sim``); ``mjd`` the MJD (UTC) of
        mid-exposure (a frame's header may give it instead); ``filter`` forces a band or band group
        (``"APASS/V"``, ``"GaiaSP/any"``; None: photcal chooses); ``exptime`` seconds; ``match_dist``
        the matching radius in arcsec (server default 2). ``dry_run`` calibrates without storing;
        ``plot`` False skips the calibration plot.

        ``wait`` True returns the :class:`UploadResult`; a refused calibration raises
        :class:`CalibrationRefused` (or :class:`Conflict` for a duplicate) with the result attached,
        a server that could not finish in its time raises :class:`StillCalibrating` with the upload id.
        ``wait`` False returns a :class:`QueuedUpload` at once: :meth:`result` waits for it.
        """
        data, name = _file_of(catalogue_or_image, filename)
        fields: dict[str, str] = {"EventID": event, "outputFormat": "json", "forceFilter": filter or "no"}
        if self.hashtag:
            fields["hashtag"] = self.hashtag
        for key, value in (("MJD", mjd), ("expTime", exptime), ("matchDist", match_dist)):
            if value is not None:
                fields[key] = repr(float(value))
        fields["dryRun"] = "1" if dry_run else "0"
        fields["noPlot"] = "0" if plot else "1"
        if comment:
            fields["comment"] = comment
        response = self._send(
            "POST",
            "/api/v1/uploads",
            retry_on=_RETRY_UPLOAD,
            params=None if wait else {"wait": "0"},
            data=fields,
            files={"sexCat": (name, data, "application/octet-stream")},
        )
        body = _json_of(response)
        if response.status_code == 202:
            upload_id = str(body["upload_id"])
            return QueuedUpload(
                upload_id, str(body.get("status_url", f"/api/v1/uploads/{upload_id}")), body.get("message", "")
            )
        result = UploadResult.from_json(body)
        if not result.ok:
            raise _calibration_error(result, response.status_code)
        return result

    def status(self, upload_id: str) -> UploadStatus:
        """Where the upload is: ``queued``, ``done`` or ``failed``, with its result once finished."""
        body = _json_of(self._send("GET", f"/api/v1/uploads/{urllib.parse.quote(upload_id, safe='')}"))
        raw = body.get("result")
        return UploadStatus(
            upload_id=str(body.get("upload_id", upload_id)),
            state=str(body.get("state") or "queued"),
            result=UploadResult.from_json(raw) if isinstance(raw, dict) else None,
        )

    def result(
        self, upload_id: str, timeout: float = 300.0, *, first_poll: float = 0.25, max_poll: float = 5.0
    ) -> UploadResult:
        """The upload's result, polling its status with back-off (``first_poll`` s, x1.5, at most ``max_poll``).

        A refused calibration raises as :meth:`upload` does; none within ``timeout`` seconds raises
        :class:`StillCalibrating` (call again to wait longer).
        """
        deadline = time.monotonic() + timeout
        interval = first_poll
        while True:
            current = self.status(upload_id)
            if current.finished and current.result is not None:
                if not current.result.ok:
                    raise _calibration_error(current.result, current.result.http_status)
                return current.result
            left = deadline - time.monotonic()
            if left <= 0:
                raise StillCalibrating(
                    "timeout",
                    None,
                    f"upload {upload_id} is still {current.state} after {timeout:.0f} s",
                    upload_id=upload_id,
                )
            self._sleep(min(interval, left))
            interval = min(interval * 1.5, max_poll)

    # -- reads -----------------------------------------------------------------------------------

    def lightcurve(self, ivorn_or_name: str) -> Table:
        """The event's light curve: one row per stored datapoint, by time.

        Columns: ``time`` (astropy ``Time``, MJD UTC of mid-exposure), ``mjd`` (d), ``mag``,
        ``mag_err``, ``limit_mag`` (mag; ``mag``/``mag_err`` masked for a non-detection),
        ``filter``, ``survey``, ``mag_system`` (``Vega``/``AB``: the server's per row where it gives
        it, else the survey's system for that band), ``observatory``, ``followup_id``, ``exptime`` (s),
        ``comment``. ``meta`` holds the event's ``ivorn``, ``name``, ``ra``, ``dec`` (deg).
        A name (``Gaia23sim``) is looked up among the alerts first.
        """
        ivorn = ivorn_or_name if "://" in ivorn_or_name else self._ivorn_of(ivorn_or_name)
        body = _json_of(self._send("GET", "/api/v1/lightcurves/" + urllib.parse.quote(ivorn, safe="")))
        return _lightcurve_table(body)

    def alerts(
        self,
        name: str | None = None,
        *,
        ra: float | None = None,
        dec: float | None = None,
        radius: float = 1.0 / 60,
        with_data: bool = False,
    ) -> list[Alert]:
        """The events, newest first: ``name`` a case-insensitive part of the name or ivorn; ``ra``, ``dec``
        and ``radius`` (deg, default 1 arcmin) a cone around a position; ``with_data`` only those with
        datapoints. The server lists every alert; the search is done here."""
        params = {"with_data": "1"} if with_data else None
        rows = _json_of(self._send("GET", "/api/v1/alerts", params=params))
        found = [Alert.from_json(row) for row in rows]
        if name:
            needle = name.lower()
            found = [a for a in found if needle in (a.name or "").lower() or needle in a.ivorn.lower()]
        if ra is not None and dec is not None:
            found = [
                a
                for a in found
                if a.ra is not None and a.dec is not None and _separation_deg(ra, dec, a.ra, a.dec) <= radius
            ]
        return found

    # -- writes ----------------------------------------------------------------------------------

    def delete(self, followup_id: int, reason: str) -> DeletedDatapoint:
        """Delete a datapoint this observatory uploaded (kept on the server with ``reason``, hidden)."""
        payload: dict[str, Any] = {"reason": reason}
        if self.hashtag:
            payload["hashtag"] = self.hashtag
        body = _json_of(
            self._send("DELETE", f"/api/v1/datapoints/{int(followup_id)}", retry_on=_RETRY_UPLOAD, json=payload)
        )
        return DeletedDatapoint(
            followup_id=int(body["followup_id"]),
            ivorn=str(body["ivorn"]),
            mjd=float(body["mjd"]),
            message=body.get("message", ""),
        )

    # -- the wire --------------------------------------------------------------------------------

    def _ivorn_of(self, name: str) -> str:
        exact = [a for a in self.alerts(name) if (a.name or "").lower() == name.lower()]
        if len(exact) != 1:
            raise PhotcalError(
                "unknown_event",
                None,
                f"no single alert is named {name!r}" + (f" ({len(exact)} are)" if exact else ""),
            )
        return exact[0].ivorn

    def _send(
        self, method: str, path: str, *, retry_on: frozenset[int] = _RETRY_READ, **kwargs: Any
    ) -> requests.Response:
        """The request, sent again after a 429's Retry-After (or a back-off) while ``retry_on`` allows."""
        backoff = 0.5
        for attempt in range(self.max_retries + 1):
            try:
                response = self._session.request(method, self.url + path, timeout=self.timeout, **kwargs)
            except requests.Timeout as exc:
                raise PhotcalTimeout(
                    "client_timeout", None, f"no answer from {self.url} in {self.timeout:.0f} s"
                ) from exc
            except requests.ConnectionError as exc:
                raise ConnectionFailed("connection_failed", None, f"cannot reach {self.url}: {exc}") from exc
            if response.status_code < 400:
                return response
            if response.status_code in retry_on and attempt < self.max_retries:
                wait = _retry_after(response)
                self._sleep(wait if wait is not None else backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            raise _http_error(response)
        raise AssertionError("unreachable")  # the loop returns or raises


def _file_of(source: str | Path | bytes, filename: str | None) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray):
        return bytes(source), filename or "catalogue"
    path = Path(source)
    return path.read_bytes(), filename or path.name


def _json_of(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise PhotcalError(
            "bad_response",
            response.status_code,
            f"the server answered {response.headers.get('Content-Type')}, not JSON",
        ) from exc


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (photcal sends seconds; an HTTP date is not waited for)."""
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def _http_error(response: requests.Response) -> PhotcalError:
    """The exception of an error answer: its code and message from photcal's JSON body."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    status = response.status_code
    code = str(body.get("error") or f"http_{status}")
    message = str(body.get("message") or response.reason or "")
    upload_id = body.get("upload_id") or response.headers.get("X-Upload-ID")
    calibration = "ivorn" in body and "upload_id" in body  # a calibration's answer, not a refused request
    cls = error_class(status, code, calibration=calibration, upload_id=upload_id)
    result = UploadResult.from_json(body) if calibration else None
    if cls is RateLimited:
        return RateLimited(
            code, status, message, retry_after=_retry_after(response) or 1.0, upload_id=upload_id, body=body
        )
    return cls(code, status, message, upload_id=upload_id, result=result, body=body)


def _calibration_error(result: UploadResult, status: int) -> PhotcalError:
    code = result.error or "calibration_failed"
    cls = error_class(status, code, calibration=True, upload_id=None)
    return cls(code, status, result.message, upload_id=result.upload_id, result=result, body=result.raw)


def _separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance, degrees (haversine: exact at small separations)."""
    p1, p2 = math.radians(dec1), math.radians(dec2)
    dp, dl = p2 - p1, math.radians(ra2 - ra1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def _column(rows: list[dict[str, Any]], key: str, dtype: str, unit: Any = None) -> MaskedColumn:
    values = [row.get(key) for row in rows]
    mask = [v is None for v in values]
    fill: Any = {"f8": math.nan, "i8": 0, "U": ""}[dtype if dtype != "str" else "U"]
    data = [fill if v is None else v for v in values]
    if dtype == "str":
        data = [str(v) for v in data]
        return MaskedColumn(data, name=key, mask=mask, dtype=str if data else "U1")
    return MaskedColumn(data, name=key, mask=mask, dtype=dtype, unit=unit)


def _lightcurve_table(body: dict[str, Any]) -> Table:
    rows: list[dict[str, Any]] = list(body.get("points") or [])
    for row in rows:
        if not row.get("mag_system"):
            row["mag_system"] = magnitude_system(row.get("survey"), row.get("filter"))
    mjd = [float(row["mjd"]) for row in rows]
    table = Table(meta={k: body.get(k) for k in ("ivorn", "name", "ra", "dec")})
    table["time"] = Time(mjd, format="mjd", scale="utc")
    table["mjd"] = MaskedColumn(mjd, dtype="f8", unit=u.day)
    for key in ("mag", "mag_err", "limit_mag"):
        table[key] = _column(rows, key, "f8", u.mag)
    for key in ("filter", "survey", "mag_system", "observatory"):
        table[key] = _column(rows, key, "str")
    table["followup_id"] = _column(rows, "followup_id", "i8")
    table["exptime"] = _column(rows, "exptime", "f8", u.s)
    table["comment"] = _column(rows, "comment", "str")
    return table
