"""Hostile input at every entry point: a clear 4xx JSON answer, never a 500, nothing stored.

One `photcal run` stack for the module (real NATS, real database); every
refused request is counted and the module ends by checking that nothing was
queued or stored for any of them. Hashtags: unknown and revoked ones are
refused, limits answer 429 with Retry-After, and no hashtag reaches a log.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import random
import urllib.parse
from collections.abc import Mapping

import nats
import pymongo
import pytest

from services.ingest.parsing import ERROR_CODES
from shared.hashtags import HASHTAG_BYTES, new_hashtag
from tests.integration.conftest import Stack, field_dir
from tools.devstack import standalone_stack, stop_all

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")
IVORN = "ivo://gaia/alerts#SimHostile"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("hostile"),
        PHOTCAL_MONGO_DB="hostile",
        PHOTCAL_HASHTAG_PEPPER="test-pepper",
        PHOTCAL_UPLOAD_TIMEOUT="30",
        PHOTCAL_LOG_LEVEL="DEBUG",
        # this module sends a few hundred requests at once; the limits have their own test
        PHOTCAL_RATE_LIMIT_HASHTAG_BURST="5000",
        PHOTCAL_RATE_LIMIT_IP_BURST="5000",
    )
    truth = stack.load_field(FIELD)
    stack.add_observatory()
    stack.cli("alert", "add", "--ivorn", IVORN, "--ra", str(truth["alert"]["ra"]), "--dec", str(truth["alert"]["dec"]))
    stack.start()
    stack.accepted = 0  # uploads that were meant to go through (dry runs)
    try:
        yield stack
        # in the teardown, so it runs after every test of the module whatever their order or selection
        assert_nothing_refused_was_queued_or_stored_and_no_hashtag_was_logged(stack)
    finally:
        stop_all(stack, servers)


def assert_nothing_refused_was_queued_or_stored_and_no_hashtag_was_logged(hostile: Stack) -> None:
    """The module's closing check, run by the ``hostile`` fixture's teardown after all its tests."""

    async def uploads_published() -> int:
        nc = await nats.connect(hostile.env["PHOTCAL_NATS_URL"])
        try:
            return (await nc.jetstream().stream_info("UPLOADS")).state.last_seq
        finally:
            await nc.close()

    assert asyncio.run(uploads_published()) == hostile.accepted
    client: pymongo.MongoClient[dict] = pymongo.MongoClient(hostile.env["PHOTCAL_MONGO_URL"])
    try:
        db = client["hostile"]
        assert db.datapoints.count_documents({}) == 0  # every accepted upload was a dry run
        assert db.uploads.count_documents({}) == hostile.accepted
    finally:
        client.close()
    log = hostile.log()
    assert '"unhandled_error"' not in log and "Traceback" not in log
    for hashtag in hostile.hashtags.values():
        assert hashtag not in log


def request(
    stack: Stack, method: str, path: str, body: bytes = b"", headers: dict | None = None, source: str = "127.0.0.1"
) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def multipart(
    fields: Mapping[str, str | bytes], files: dict[str, tuple[str, bytes]] | None = None, part_headers: str = ""
) -> tuple[bytes, str]:
    boundary = "----hostile" + str(random.randint(0, 10**9))
    out = []
    for name, value in fields.items():
        value = value.encode() if isinstance(value, str) else value
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n")
    for name, (filename, data) in (files or {}).items():
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n{part_headers}\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(out) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def good_fields(stack: Stack, **over: str | bytes | None) -> dict[str, str | bytes]:
    fields: dict[str, str | bytes | None] = {
        "hashtag": stack.hashtags["Test Observatory"],
        "EventID": IVORN,
        "MJD": "60100.5",
        "expTime": "60",
        "noPlot": "1",
        "dryRun": "1",
        "outputFormat": "json",
        "matchDist": "2",
    }
    fields.update(over)
    return {k: v for k, v in fields.items() if v is not None}


def catalogue() -> bytes:
    return (FIELD / "sex_cpcs.cat").read_bytes()


def upload(stack: Stack, fields: dict, files: dict | None = None, path: str = "/api/v1/uploads", **kw):
    body, content_type = multipart(fields, {"sexCat": ("cat.txt", catalogue())} if files is None else files, **kw)
    return request(stack, "POST", path, body, {"Content-Type": content_type})


def assert_refused(answer: tuple[int, dict, bytes], status: int | None = None, code: str | None = None) -> dict:
    got, headers, raw = answer
    assert 400 <= got < 500, (got, raw[:300])
    if status is not None:
        assert got == status, (got, raw[:300])
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    body = json.loads(raw)
    assert body["status"] == "error" and body["error"] and body["message"], body
    assert len(body["message"]) < 300 and "Traceback" not in body["message"]
    if code is not None:
        assert body["error"] == code, body
    return body


# -- the upload form -------------------------------------------------------------------------------------------

BAD_FIELDS = [
    ({"MJD": "abc"}, "bad_field"),
    ({"MJD": "-5"}, "bad_field"),
    ({"MJD": "1e400"}, "bad_field"),
    ({"MJD": "nan"}, "bad_field"),
    ({"MJD": "inf"}, "bad_field"),
    ({"MJD": "-inf"}, "bad_field"),
    ({"MJD": "9" * 400}, "bad_field"),
    ({"MJD": "0x10"}, "bad_field"),
    ({"MJD": ""}, "bad_field"),
    ({"expTime": "-1"}, "bad_field"),
    ({"expTime": "1e308"}, "bad_field"),
    ({"matchDist": "1e9"}, "bad_field"),
    ({"matchDist": "0"}, "bad_field"),
    ({"dryRun": "maybe"}, "bad_field"),
    ({"noPlot": "2"}, "bad_field"),
    ({"outputFormat": "xml"}, "bad_field"),
    ({"comment": "x" * 5000}, "bad_field"),
    ({"EventID": "123"}, "bad_field"),
    ({"EventID": "<script>alert(1)</script>"}, "bad_field"),
    ({"EventID": '{"$ne": null}'}, "bad_field"),
    ({"EventID": "ivo://gaia/alerts#x'; db.dropDatabase()"}, "bad_field"),
    ({"EventID": b"ivo://gaia/alerts#\xff\xfe\x00"}, "bad_field"),
    ({"EventID": "ivo://" + "a" * 5000}, "bad_field"),
    ({"EventID": None}, "missing_field"),
    ({"MJD": None}, "missing_field"),
    ({"forceFilter": "$where"}, None),
    ({"forceFilter": "APASS/<b>"}, None),
]


@pytest.mark.parametrize("over,code", BAD_FIELDS, ids=[repr(o)[:40] for o, _ in BAD_FIELDS])
def test_bad_upload_fields_are_refused(hostile, over, code):
    assert_refused(upload(hostile, good_fields(hostile, **over)), 400, code)


def test_unknown_event_is_404(hostile):
    assert_refused(upload(hostile, good_fields(hostile, EventID="ivo://gaia/alerts#NoSuchEvent")), 404, "unknown_event")


def test_missing_catalogue_is_400(hostile):
    assert_refused(upload(hostile, good_fields(hostile), files={}), 400, "missing_catalogue")


FITS_BOMB = b"".join(
    (b"".join(c.ljust(80).encode() for c in cards) + b"END".ljust(80)).ljust(2880 * ((len(cards) + 1) * 80 // 2880 + 1))
    for cards in (
        ["SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 0", "EXTEND  = T"],
        [
            "XTENSION= 'BINTABLE'",
            "BITPIX  = 8",
            "NAXIS   = 2",
            "NAXIS1  = 1000000000",
            "NAXIS2  = 1000000000",
            "PCOUNT  = 0",
            "GCOUNT  = 1",
            "TFIELDS = 1",
            "TTYPE1  = 'MAG_AUTO'",
            "TFORM1  = 'E'",
        ],
    )
)
HEADER_ONLY = (
    b"#   1 MAG_AUTO  Kron-like elliptical aperture magnitude  [mag]\n"
    b"#   2 MAGERR_AUTO\n#   3 ALPHA_J2000\n#   4 DELTA_J2000\n"
)
BAD_CATALOGUES = {
    "empty": b"",
    "random_bytes": random.Random(1).randbytes(50_000),
    "png": b"\x89PNG\r\n\x1a\n" + bytes(2000),
    "gzip": gzip.compress(b"1 2 3 4\n" * 1000),
    "gzip_bomb": gzip.compress(bytes(30 * MB)),
    "zip": b"PK\x03\x04" + bytes(1000),
    "fits_bomb": FITS_BOMB,
    "fits_truncated": (FIELD / "sex_fits1.fits").read_bytes()[:5000],
    "header_only": HEADER_ONLY,
    "non_utf8_text": b"# 1 MAG_AUTO\n\xff\xfe\xfd 0.1 10 20\n" * 10,
    "nul_bytes": b"\x00" * 10_000,
    "html": b"<html><script>alert(1)</script></html>",
    "json_operator": b'{"$where": "sleep(10000)"}',
    "nan_inf_everywhere": b"nan nan nan nan\ninf -inf inf -inf\n" * 100,
    "huge_numbers": b"1e308 1e308 1e308 1e308\n-1e308 -1e308 -1e308 -1e308\n" * 100,
}


@pytest.mark.parametrize("name", sorted(BAD_CATALOGUES))
def test_bad_catalogues_are_refused(hostile, name):
    body = assert_refused(upload(hostile, good_fields(hostile), files={"sexCat": ("cat.txt", BAD_CATALOGUES[name])}))
    assert body["error"] in ERROR_CODES, body


def test_hundreds_of_thousands_of_rows_are_413(hostile):
    rng = random.Random(2)
    rows = "".join(
        f"{rng.uniform(10, 20):.3f} 0.010 {rng.uniform(0, 1):.6f} {rng.uniform(0, 1):.6f}\n" for _ in range(300_000)
    ).encode()
    assert len(rows) < 20 * MB
    assert_refused(upload(hostile, good_fields(hostile), files={"sexCat": ("big.cat", rows)}), 413)


@pytest.mark.parametrize(
    "filename",
    [
        "../../../../etc/passwd",
        "/etc/shadow",
        "..\\..\\windows\\win.ini",
        "a\x00b.cat",
        "<img src=x onerror=alert(1)>.cat",
        "x" * 5000,
    ],
)
def test_path_like_file_names_are_only_names(hostile, filename):
    # a valid catalogue under a hostile name is accepted (dry run); the name is never used as a path
    answer = upload(hostile, good_fields(hostile), files={"sexCat": (filename, catalogue())})
    if "\x00" in filename:  # a NUL in a part's header is a malformed form
        assert_refused(answer, 400, "bad_form")
        return
    assert answer[0] == 200, answer[2][:300]
    hostile.accepted += 1
    # and garbage under such a name is the usual 400
    assert_refused(upload(hostile, good_fields(hostile), files={"sexCat": (filename, b"\x00\x01garbage")}), 400)


# -- size and encoding of the request itself ------------------------------------------------------------------


def test_a_declared_body_over_the_frame_limit_is_413_before_it_is_read(hostile):
    # a body up to PHOTCAL_MAX_IMAGE_BYTES (200 MB) may be a FITS frame: only past that is it refused unread
    conn = http.client.HTTPConnection("127.0.0.1", hostile.port, timeout=30)
    conn.putrequest("POST", "/cgi/upload")
    conn.putheader("Content-Type", "multipart/form-data; boundary=xyz")
    conn.putheader("Content-Length", str(201 * MB))
    conn.endheaders()
    conn.send(b"--xyz\r\n" + bytes(64 * 1024))
    response = conn.getresponse()
    assert_refused((response.status, dict(response.getheaders()), response.read()), 413, "too_large")
    conn.close()


def test_a_chunked_body_over_20_mb_is_413(hostile):
    fields_body, content_type = multipart(good_fields(hostile))
    boundary = content_type.split("boundary=")[1]
    head = fields_body[: -len(f"--{boundary}--\r\n")] + (
        f'--{boundary}\r\nContent-Disposition: form-data; name="sexCat"; filename="c.cat"\r\n\r\n'.encode()
    )
    conn = http.client.HTTPConnection("127.0.0.1", hostile.port, timeout=30)
    conn.putrequest("POST", "/api/v1/uploads")
    conn.putheader("Content-Type", content_type)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"12.000 0.010 10.000 20.000\n" * 40_000  # ~1 MB
    try:
        for piece in [head] + [chunk] * 25:
            conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before we finished: fine
    response = conn.getresponse()
    assert_refused((response.status, dict(response.getheaders()), response.read()), 413, "too_large")
    conn.close()


def test_a_gzip_bomb_request_body_is_413(hostile):
    fields_body, content_type = multipart(good_fields(hostile), {"sexCat": ("c.cat", bytes(40 * MB))})
    bomb = gzip.compress(fields_body, compresslevel=9)
    assert len(bomb) < MB
    answer = request(
        hostile, "POST", "/api/v1/uploads", bomb, {"Content-Type": content_type, "Content-Encoding": "gzip"}
    )
    assert_refused(answer, 413, "too_large")


def test_a_compressed_form_part_is_refused(hostile):
    answer = upload(
        hostile,
        good_fields(hostile),
        files={"sexCat": ("c.cat", gzip.compress(bytes(10 * MB)))},
        part_headers="Content-Encoding: gzip\r\n",
    )
    assert_refused(answer, 400, "bad_form")


@pytest.mark.parametrize(
    "content_type,body",
    [
        ("multipart/form-data", b"no boundary at all"),
        ("multipart/form-data; boundary=abc", b'--abc\r\nContent-Disposition: form-data; name="MJD"\r\n\r\n600'),
        ("multipart/form-data; boundary=abc", b"garbage without any boundary line" * 100),
        ("multipart/form-data; boundary=abc", b"--abc\r\n\xff\xfe: \x00\r\n\r\nx\r\n--abc--\r\n"),
        ("application/json", b'{"hashtag": {"$ne": ""}, "EventID": {"$gt": ""}}'),
        ("application/x-www-form-urlencoded", b"hashtag[$ne]=x&EventID[$gt]=&MJD=1"),
        ("text/plain", b"\x00\x01\x02"),
    ],
)
def test_malformed_requests_are_refused(hostile, content_type, body):
    assert_refused(request(hostile, "POST", "/cgi/upload?outputFormat=json", body, {"Content-Type": content_type}))


def test_too_many_form_parts_are_refused(hostile):
    fields = good_fields(hostile) | {f"extra{i}": "x" for i in range(200)}
    assert_refused(upload(hostile, fields), 400, "bad_form")


# -- the other entry points ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"ivorn": {"$ne": None}, "ra": 1, "dec": 2},
        {"ivorn": "ivo://x/y#z", "ra": {"$gt": 0}, "dec": 2},
        {"ivorn": "ivo://x/y#z", "ra": "nan", "dec": 2},
        {"ivorn": "ivo://x/y#z", "ra": 1e400, "dec": 2},
        {"ivorn": "ivo://x/y#z", "ra": -1, "dec": 2},
        {"ivorn": "ivo://x/y#z", "ra": 1, "dec": 91},
        {"ivorn": "ivo://x/y#z", "ra": [1], "dec": 2},
        {"ivorn": "<b>x</b>", "ra": 1, "dec": 2},
        {"ra": 1, "dec": 2},
        {"ivorn": "ivo://x/y#z"},
    ],
)
def test_bad_new_events_are_refused(hostile, payload):
    payload = payload | {"hashtag": hostile.hashtags["Test Observatory"]}
    raw = json.dumps(payload).replace("Infinity", "1e400").encode()
    assert_refused(request(hostile, "POST", "/api/v1/alerts", raw, {"Content-Type": "application/json"}), 400)


@pytest.mark.parametrize("raw", [b"not json", b"[1,2,3]", b'"a string"', b"\xff\xfe\x00\x01", b"{" * 10000])
def test_unreadable_json_is_refused(hostile, raw):
    assert_refused(request(hostile, "POST", "/api/v1/alerts", raw, {"Content-Type": "application/json"}), 400)


def test_nosql_operator_as_hashtag_is_401(hostile):
    raw = json.dumps({"hashtag": {"$ne": ""}, "ivorn": "ivo://x/y#z", "ra": 1, "dec": 2}).encode()
    assert_refused(request(hostile, "POST", "/api/v1/alerts", raw, {"Content-Type": "application/json"}), 401)


@pytest.mark.parametrize("upload_id", ['{"$ne":null}', "../../etc", "a" * 100, "%00", "<script>"])
def test_bad_upload_ids_are_refused(hostile, upload_id):
    answer = request(hostile, "GET", "/api/v1/uploads/" + urllib.parse.quote(upload_id, safe=""))
    assert_refused(answer)


def test_html_in_text_fields_comes_back_escaped(hostile):
    status, _h, raw = upload(hostile, good_fields(hostile, outputFormat="html", comment="<script>alert(1)</script>"))
    assert status == 200 and b"<script>alert(1)</script>" not in raw
    hostile.accepted += 1
    name = "<img src=x onerror=alert(1)>"
    event = {
        "hashtag": hostile.hashtags["Test Observatory"],
        "ivorn": "ivo://gaia/alerts#HtmlName",
        "ra": 10,
        "dec": 20,
        "name": name,
    }
    # a javascript: link is refused outright; an http one with markup in it is stored and shown as text
    status, _h, raw = request(
        hostile,
        "POST",
        "/api/v1/alerts",
        json.dumps(event | {"url": "javascript:alert(1)"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 400 and b"http" in raw
    body = json.dumps(event | {"url": 'https://example.org/"><script>alert(1)</script>'}).encode()
    status, _h, raw = request(hostile, "POST", "/api/v1/alerts", body, {"Content-Type": "application/json"})
    assert status == 201, raw
    status, _h, page = request(hostile, "GET", "/alerts")
    assert status == 200 and name.encode() not in page and b"&lt;img" in page and b"<script>alert(1)" not in page


# -- hashtags ------------------------------------------------------------------------------------------------


def test_hashtags_are_random_with_at_least_128_bits():
    tags = {new_hashtag() for _ in range(1000)}
    assert len(tags) == 1000 and HASHTAG_BYTES * 8 >= 128
    assert all(len(t) >= 22 for t in tags)  # 128 bits in URL-safe base64 is at least 22 characters


@pytest.mark.parametrize("where", ["form", "query", "cookie"])
def test_unknown_hashtags_are_401_wherever_they_come(hostile, where):
    fields = good_fields(hostile, hashtag=None)
    body, content_type = multipart(fields, {"sexCat": ("cat.txt", catalogue())})
    headers = {"Content-Type": content_type}
    path = "/cgi/upload"
    fake = new_hashtag()
    if where == "form":
        body, content_type = multipart(fields | {"hashtag": fake}, {"sexCat": ("cat.txt", catalogue())})
        headers = {"Content-Type": content_type}
    elif where == "query":
        path += "?hashtag=" + fake
    else:
        headers["Cookie"] = f"hashtag={fake}"
    assert_refused(request(hostile, "POST", path, body, headers), 401)


def test_a_revoked_hashtag_is_refused_at_once(hostile):
    hashtag = hostile.add_observatory("Revoked Observatory")
    status, _h, raw = upload(hostile, good_fields(hostile, hashtag=hashtag))
    assert status == 200, raw
    hostile.accepted += 1
    hostile.cli("observatory", "revoke", "--name", "Revoked Observatory")
    assert_refused(upload(hostile, good_fields(hostile, hashtag=hashtag)), 401)


def test_a_rotated_hashtag_replaces_the_old_one(hostile):
    old = hostile.add_observatory("Rotating Observatory")
    out = hostile.cli("observatory", "rotate", "--name", "Rotating Observatory").stdout
    new = out.split("new hashtag of Rotating Observatory: ", 1)[1].split()[0]
    assert new != old
    assert_refused(upload(hostile, good_fields(hostile, hashtag=old)), 401)
    status, _h, raw = upload(hostile, good_fields(hostile, hashtag=new))
    assert status == 200, raw
    hostile.accepted += 1


def test_rate_limits_per_hashtag_and_per_ip_answer_429_with_retry_after(stack):
    stack.env.update(
        PHOTCAL_RATE_LIMIT_HASHTAG_PER_S="0.2",
        PHOTCAL_RATE_LIMIT_HASHTAG_BURST="5",
        PHOTCAL_RATE_LIMIT_IP_PER_S="0.5",
        PHOTCAL_RATE_LIMIT_IP_BURST="15",
        # the ingress: connections from 127.0.0.2 (the old setting alone now trusts nobody)
        PHOTCAL_TRUSTED_PROXIES="127.0.0.2",
        PHOTCAL_TRUST_FORWARDED_FOR="1",
    )
    stack.start()
    fields = {"EventID": IVORN, "MJD": "60000", "outputFormat": "json"}

    def post(hashtag: str, ip: str, source: str = "127.0.0.2"):
        body, content_type = multipart(fields | {"hashtag": hashtag})
        return request(
            stack,
            "POST",
            "/api/v1/uploads",
            body,
            {"Content-Type": content_type, "X-Forwarded-For": f"6.6.6.6, {ip}"},
            source=source,
        )

    guessed = new_hashtag()
    answers = [post(guessed, "10.0.0.1") for _ in range(7)]
    assert [a[0] for a in answers[:5]] == [401] * 5  # unknown, but each counts against the hashtag
    body = assert_refused(answers[5], 429, "rate_limited")
    assert int(answers[5][1]["Retry-After"]) >= 1 and "hashtag" in body["message"]
    # another hashtag from the same address still goes through to the check of the hashtag
    assert post(new_hashtag(), "10.0.0.1")[0] == 401
    # per address: the 16th write from one address is refused whatever the hashtag
    answers = [post(new_hashtag(), "10.0.0.2") for _ in range(16)]
    assert [a[0] for a in answers[:15]] == [401] * 15
    body = assert_refused(answers[15], 429, "rate_limited")
    assert int(answers[15][1]["Retry-After"]) >= 1 and "address" in body["message"]
    # the client's own X-Forwarded-For entries are not trusted: only the last (the proxy's) is the address
    assert post(new_hashtag(), "10.0.0.3")[0] == 401
    # a client connecting directly (not through the proxy) cannot pick its address by the header
    answers = [post(new_hashtag(), f"10.1.0.{i}", source="127.0.0.1") for i in range(16)]
    assert [a[0] for a in answers[:15]] == [401] * 15
    assert_refused(answers[15], 429, "rate_limited")
    assert guessed not in stack.log()


def test_the_hashtag_is_stored_only_as_a_hash(hostile):
    client: pymongo.MongoClient[dict] = pymongo.MongoClient(hostile.env["PHOTCAL_MONGO_URL"])
    try:
        docs = list(client["hostile"].observatories.find({}))
    finally:
        client.close()
    for doc in docs:
        dump = json.dumps(doc, default=str)
        for hashtag in hostile.hashtags.values():
            assert hashtag not in dump
        assert len(doc["hashtag_hash"]) == 64
