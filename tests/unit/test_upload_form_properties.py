"""Property tests of the upload form, the multipart reader, the rate limiter and the gateway's memory.

Whatever a client sends, the form answers an :class:`UploadForm` or one of
our 4xx errors, never anything else; valid values round-trip.
"""

from __future__ import annotations

import http.client
import json
import math

import pytest
from aiohttp import web
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.ingest.cache import LastKnown
from services.ingest.forms import UploadForm, read_upload_form
from services.ingest.ratelimit import TokenBucket
from services.ingest.uploads import read_form
from shared.errors import BadInput, PayloadTooLarge, PhotcalError
from shared.http_errors import json_errors
from shared.validation import clean_comment
from tests.threaded_app import serve_in_thread

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FIELD_NAMES = list(UploadForm.model_fields) + ["hashtag", "fits_id", "sexCat", "$where", "MJD[$gt]", ""]
NASTY_TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e400",
            "-1e400",
            "1e-400",
            "0",
            "-0",
            "1_000",
            "0x1p3",
            " 5 ",
            "5,5",
            "1e5",
            "99999.99",
            "100000",
            "\x00",
            "\ud7ff",
            '{"$ne": null}',
            "<script>",
            "1/0",
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)


@FAST
@given(st.dictionaries(st.sampled_from(FIELD_NAMES), NASTY_TEXT, max_size=12))
def test_any_form_is_a_form_or_a_400(fields):
    try:
        form = read_upload_form(fields)
    except BadInput as err:
        assert err.http_status == 400 and err.code and err.message and len(err.message) < 300
        return
    assert form.MJD is not None and 0 < form.MJD < 100_000 and math.isfinite(form.MJD)
    assert form.expTime is None or (0 <= form.expTime <= 1e6)
    assert 0 < form.matchDist <= 60
    assert len(form.comment) <= 2000 and form.outputFormat in ("json", "html")


PADDING = st.sampled_from(["", "", " ", "  "])
IVORNS = st.from_regex(r"\Aivo://[a-z][a-z0-9.]{0,20}/[a-z]{1,10}#[A-Za-z0-9]{1,20}\Z")


@FAST
@given(
    ivorn=IVORNS,
    mjd=st.floats(min_value=1e-3, max_value=99_999.99, allow_nan=False),
    exptime=st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
    match=st.floats(min_value=0.01, max_value=60, allow_nan=False),
    # any text, padded with spaces half the time: the form keeps the comment as sent, stripped
    comment=st.tuples(PADDING, st.text(max_size=196), PADDING).map("".join),
    dry=st.booleans(),
    fmt=st.sampled_from(["json", "html", "JSON", " html "]),
)
def test_valid_forms_round_trip(ivorn, mjd, exptime, match, comment, dry, fmt):
    fields = {
        "EventID": ivorn,
        "MJD": repr(mjd),
        "matchDist": repr(match),
        "comment": comment,
        "dryRun": "1" if dry else "0",
        "outputFormat": fmt,
        "fits_id": "ignored",
    }
    if exptime is not None:
        fields["expTime"] = repr(exptime)
    form = read_upload_form(fields)
    assert form.EventID == ivorn and mjd == form.MJD and form.matchDist == match
    assert form.expTime == exptime and form.dryRun is dry
    # the comment as sent, without its control/invisible characters (shared.validation.clean_comment)
    assert form.comment == clean_comment(comment)
    if comment.isprintable():
        assert form.comment == comment.strip()
    assert form.outputFormat == fmt.strip().lower() and form.forceFilter == "no" and form.noPlot is False


@FAST
@given(
    st.sampled_from(["MJD", "expTime", "matchDist"]),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-1", "-1e-9", "1e7", "abc", "", "1e1000000"]),
)
def test_out_of_range_numbers_are_always_refused(name, value):
    fields = {"EventID": "ivo://gaia/alerts#X", "MJD": "60000"} | {name: value}
    if name == "expTime" and value in ("",):
        return  # an empty expTime is "not given"
    with pytest.raises(BadInput):
        read_upload_form(fields)


# -- the multipart reader behind a real aiohttp server ---------------------------------------------------------

MAX_BYTES = 4096


@pytest.fixture(scope="module")
def form_server():
    """A real aiohttp server (own thread and loop) whose one route is the gateway's read_form."""

    async def handler(request: web.Request) -> web.Response:
        fields, data, filename = await read_form(request, MAX_BYTES)
        return web.json_response({"fields": fields, "size": None if data is None else len(data), "filename": filename})

    app = web.Application(middlewares=[json_errors])
    app.router.add_post("/", handler)
    with serve_in_thread(app) as port:
        yield port


# what a form field is called in practice (aiohttp drops names it cannot parse; that is not ours to test)
PART_NAMES = st.from_regex(r"\A[A-Za-z0-9_.$\[\]-]{1,12}\Z")


def _multipart(fields: dict[str, bytes], catalogue: bytes | None, boundary: str = "b0undary") -> bytes:
    out = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode() + v + b"\r\n"
        for k, v in fields.items()
    ]
    if catalogue is not None:
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="sexCat"; filename="../x.cat"\r\n\r\n'.encode()
            + catalogue
            + b"\r\n"
        )
    return b"".join(out) + f"--{boundary}--\r\n".encode()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=st.dictionaries(PART_NAMES, st.binary(max_size=300).filter(lambda b: b"--b0undary" not in b), max_size=8),
    catalogue=st.none() | st.binary(max_size=6000).filter(lambda b: b"--b0undary" not in b),
    raw_tail=st.binary(max_size=50),
    chunked=st.booleans(),
)
def test_the_multipart_reader_answers_fields_or_a_4xx(form_server, fields, catalogue, raw_tail, chunked):
    assume("sexCat" not in fields)
    body = _multipart(fields, catalogue) + raw_tail
    conn = http.client.HTTPConnection("127.0.0.1", form_server, timeout=10)
    headers = {"Content-Type": "multipart/form-data; boundary=b0undary"}
    if chunked:
        conn.putrequest("POST", "/")
        for k, v in (headers | {"Transfer-Encoding": "chunked"}).items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            for i in range(0, len(body), 1000):
                piece = body[i : i + 1000]
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
    else:
        conn.request("POST", "/", body=body, headers=headers)
    response = conn.getresponse()
    answer = json.loads(response.read())
    conn.close()
    total = sum(len(v) for v in fields.values()) + len(catalogue or b"")
    if response.status == 200:
        assert total <= MAX_BYTES
        assert answer["size"] == (None if catalogue is None else len(catalogue))
        assert set(answer["fields"]) == set(fields)
        for name, value in fields.items():
            assert answer["fields"][name] == value.decode("utf-8", "replace")
    else:
        assert response.status in (400, 413), answer
        assert answer["status"] == "error" and answer["error"]
        if total > MAX_BYTES + 1000:
            assert response.status == 413


# -- rate limiter and the gateway's memory ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@FAST
@given(
    rate=st.floats(0.1, 50),
    burst=st.integers(1, 100),
    steps=st.lists(st.tuples(st.floats(0, 2), st.sampled_from(["a", "b"])), max_size=300),
)
def test_the_token_bucket_never_allows_more_than_burst_plus_rate(rate, burst, steps):
    clock = Clock()
    bucket = TokenBucket(rate, burst, clock=clock)
    allowed = {"a": 0, "b": 0}
    start = clock.t
    for dt, key in steps:
        clock.t += dt
        wait = bucket.take(key)
        assert wait >= 0
        if wait == 0:
            allowed[key] += 1
        else:
            assert wait <= 1 / rate + 1e-9
    for key in allowed:
        assert allowed[key] <= burst + rate * (clock.t - start) + 1e-6


def test_a_refused_client_gets_in_after_retry_after():
    clock = Clock()
    bucket = TokenBucket(2.0, 3, clock=clock)
    assert [bucket.take("k") for _ in range(3)] == [0, 0, 0]
    wait = bucket.take("k")
    assert wait > 0
    clock.t += wait
    assert bucket.take("k") == 0


def test_the_token_bucket_keeps_at_most_max_keys():
    bucket = TokenBucket(1.0, 1, max_keys=100)
    for i in range(10_000):
        bucket.take(str(i))
    assert len(bucket._buckets) == 100


@FAST
@given(
    st.lists(
        st.tuples(st.sampled_from(["put", "forget", "recall", "tick"]), st.sampled_from("abc"), st.floats(0, 100)),
        max_size=100,
    )
)
def test_the_memory_never_answers_older_than_its_ttl(ops):
    clock = Clock()
    memory = LastKnown(ttl=30, max_entries=2, clock=clock)
    confirmed: dict[str, float] = {}
    for op, key, dt in ops:
        if op == "put":
            memory.remember("obs", key, key.upper())
            confirmed[key] = clock.t
        elif op == "forget":
            memory.remember("obs", key, None)
            confirmed.pop(key, None)
        elif op == "tick":
            clock.t += dt
        else:
            value = memory.recall("obs", key)
            if value is not None:
                assert value == key.upper() and clock.t - confirmed[key] <= 30
    assert len(memory) <= 2


def test_errors_are_photcal_errors():
    assert issubclass(PayloadTooLarge, PhotcalError) and PayloadTooLarge.http_status == 413
