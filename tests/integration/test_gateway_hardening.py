"""What an attacker and an operator found on a running stack, over real HTTP against `photcal run`.

- compressed request bodies: the limits count the bytes after decompression, on every route,
  and twenty gzip bombs at once do not grow the gateway's memory;
- the login cookie is no ticket for other pages: a write taking its hashtag from the cookie needs
  the session's CSRF token or a same-origin request (another port of this host is another origin);
  scripts sending the hashtag themselves are unaffected;
- login needs our own login page, logout is a POST with the token and revokes the session in the
  database (a saved copy of the cookie is refused afterwards);
- X-Forwarded-For/-Proto count only from PHOTCAL_TRUSTED_PROXIES: the cookie is Secure behind a
  TLS proxy, and a direct client cannot pick its rate-limit key.

The stack trusts 127.0.0.2 as its proxy: tests connect from 127.0.0.2 to play the ingress,
from 127.0.0.1 to be a client connecting directly.
"""

from __future__ import annotations

import gzip
import http.client
import json
import re
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from pathlib import Path

import pymongo
import pytest

from tests.integration.conftest import Stack, field_dir
from tools.devstack import standalone_stack, stop_all

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")
IVORN = "ivo://gaia/alerts#SimHardening"
MB = 1024 * 1024
PROXY = "127.0.0.2"
#: a page on another port of the same host: same site, another origin
EVIL_ORIGIN = "http://127.0.0.1:1"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("hardening"),
        PHOTCAL_MONGO_DB="hardening",
        PHOTCAL_RATE_LIMIT_HASHTAG_BURST="5000",
        PHOTCAL_RATE_LIMIT_IP_BURST="5000",
        PHOTCAL_TRUSTED_PROXIES=PROXY,
        PHOTCAL_LOG_LEVEL="INFO",
    )
    truth = stack.load_field(FIELD)
    stack.add_observatory("Victim Observatory")
    stack.add_observatory("Attacker Observatory")
    stack.cli("alert", "add", "--ivorn", IVORN, "--ra", str(truth["alert"]["ra"]), "--dec", str(truth["alert"]["dec"]))
    stack.start()
    try:
        yield stack
    finally:
        stop_all(stack, servers)


def call(
    stack: Stack, method: str, path: str, body: bytes = b"", headers: dict | None = None, source: str = "127.0.0.1"
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def json_error(answer, status: int, code: str | None = None) -> dict:
    got, headers, raw = answer
    assert got == status, (got, raw[:300])
    assert headers.get("Content-Type", "").startswith("application/json"), (headers, raw[:200])
    body = json.loads(raw)
    assert body["status"] == "error" and body["message"], body
    if code:
        assert body["error"] == code, body
    return body


def own_origin(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.port}"


def form(fields: dict) -> tuple[bytes, dict]:
    return urllib.parse.urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"}


def multipart(fields: dict[str, str | bytes]) -> tuple[bytes, dict]:
    boundary = "----hardening0123"
    out = []
    for name, value in fields.items():
        value = value.encode() if isinstance(value, str) else value
        disposition = f'form-data; name="{name}"' + ('; filename="c.cat"' if name == "sexCat" else "")
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n")
    return b"".join(out) + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def set_cookies(headers: http.client.HTTPMessage) -> dict[str, str]:
    """name -> the whole Set-Cookie line."""
    return {line.split("=", 1)[0].strip(): line for line in headers.get_all("Set-Cookie") or []}


def log_in(stack: Stack, name: str = "Victim Observatory") -> str:
    """A browser's login on our own page; the photcal_session cookie value."""
    body, headers = form({"hashtag": stack.hashtags[name], "next": "/upload"})
    answer = call(stack, "POST", "/login", body, headers | {"Origin": own_origin(stack)})
    assert answer[0] == 303, answer[2][:300]
    cookie = SimpleCookie(set_cookies(answer[1])["photcal_session"])
    return cookie["photcal_session"].value


def page_csrf(stack: Stack, cookie: str, path: str = "/upload") -> str:
    status, _, raw = call(stack, "GET", path, headers={"Cookie": f"photcal_session={cookie}"})
    assert status == 200, raw[:300]
    found = re.search(rb'name="csrf" value="([^"]+)"', raw)
    assert found is not None, raw[:300]
    return found.group(1).decode()


def mongo(stack: Stack):
    return pymongo.MongoClient(stack.env["PHOTCAL_MONGO_URL"])["hardening"]


_next_point = [700_000]


def stored_point(stack: Stack, name: str = "Victim Observatory") -> int:
    db = mongo(stack)
    observatory = db.observatories.find_one({"name": name})
    _next_point[0] += 1
    followup_id = _next_point[0]
    db.datapoints.insert_one(
        {
            "followup_id": followup_id,
            "upload_id": f"hard{followup_id}",
            "ivorn": IVORN,
            "alert_name": "SimHardening",
            "observatory_id": observatory["observatory_id"],
            "observatory": name,
            "mjd": 60000 + followup_id / 1e6,
            "exptime": 60.0,
            "survey": "APASS",
            "filter": "V",
            "mag": 17.0,
            "mag_err": 0.05,
            "limit_mag": None,
            "detected": True,
            "comment": "",
            "dedupe_key": f"hard|{followup_id}",
            "deleted": False,
        }
    )
    return followup_id


def deleted(stack: Stack, followup_id: int) -> bool:
    return bool(mongo(stack).datapoints.find_one({"followup_id": followup_id})["deleted"])


def events_named(stack: Stack, ivorn: str) -> int:
    return mongo(stack).alerts.count_documents({"ivorn": ivorn})


# -- 1. compressed bodies --------------------------------------------------------------------------------------

ZEROS = 20 * MB
BOMB = gzip.compress(bytes(ZEROS), compresslevel=9)

#: every route that takes a small body (forms, JSON); the upload routes have their own test (test_hostile_input)
SMALL_BODY_ROUTES = [
    ("POST", "/cgi/newevent", "application/x-www-form-urlencoded"),
    ("POST", "/followup/cgi/newevent", "application/x-www-form-urlencoded"),
    ("POST", "/cgi/delpoint", "application/x-www-form-urlencoded"),
    ("POST", "/cgi/newuser", "application/x-www-form-urlencoded"),
    ("POST", "/api/v1/alerts", "application/json"),
    ("POST", "/api/v1/alerts", "application/x-www-form-urlencoded"),
    ("DELETE", "/api/v1/datapoints/1", "application/x-www-form-urlencoded"),
    ("POST", "/login", "application/x-www-form-urlencoded"),
    ("POST", "/logout", "application/x-www-form-urlencoded"),
    ("POST", "/events/new", "application/x-www-form-urlencoded"),
    ("POST", "/datapoints/1/delete", "application/x-www-form-urlencoded"),
    ("POST", "/get_alert_lc_data", "application/x-www-form-urlencoded"),
    ("POST", "/cgi/newevent", "multipart/form-data; boundary=xyz"),
]


def bomb(stack: Stack, method: str, path: str, content_type: str):
    return call(stack, method, path, BOMB, {"Content-Type": content_type, "Content-Encoding": "gzip"})


@pytest.mark.parametrize("method,path,content_type", SMALL_BODY_ROUTES)
def test_a_gzip_bomb_on_a_small_body_route_is_413(gw, method, path, content_type):
    assert len(BOMB) < 64 * 1024  # under every limit on the wire
    body = json_error(bomb(gw, method, path, content_type), 413, "too_large")
    assert "64 KB" in body["message"]


def _memory(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} for {pid}")


def test_forty_bombs_at_once_leave_the_gateways_memory_bounded(gw):
    pid = gw.service_pid("ingest")
    before = _memory(pid, "VmRSS")
    peak = [before]
    done = threading.Event()

    def sample():  # peak RSS while the bombs land (VmHWM may hold an older, higher peak)
        while not done.is_set():
            peak[0] = max(peak[0], _memory(pid, "VmRSS"))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(lambda i: bomb(gw, *SMALL_BODY_ROUTES[i % 2]), range(40)))
    finally:
        done.set()
        sampler.join()
    grown = peak[0] - before
    print(f"40 concurrent gzip bombs: gateway RSS {before / MB:.0f} MB -> peak {peak[0] / MB:.0f} MB")
    assert grown < 150 * MB, f"40 gzip bombs (20 MB each decompressed) grew the gateway by {grown / MB:.0f} MB"
    assert [a[0] for a in answers] == [413] * 40


def test_a_plain_small_form_still_passes_compressed(gw):
    """Compression itself stays accepted: it is the decompressed size that is limited."""
    body, headers = form(
        {
            "hashtag": gw.hashtags["Victim Observatory"],
            "EventID": "ivo://gaia/alerts#SimGzipOk",
            "ra": "10",
            "dec": "20",
            "outputFormat": "json",
        }
    )
    status, _, raw = call(gw, "POST", "/cgi/newevent", gzip.compress(body), headers | {"Content-Encoding": "gzip"})
    assert status == 200, raw[:300]


# -- 2. CSRF through the login cookie ---------------------------------------------------------------------------


def test_a_page_on_another_port_cannot_write_with_the_login_cookie(gw):
    cookie = {"Cookie": f"photcal_session={log_in(gw)}"}
    point = stored_point(gw)
    for origin_headers in ({"Origin": EVIL_ORIGIN}, {"Sec-Fetch-Site": "same-site"}, {"Origin": "null"}, {}):
        body, headers = form({"followupid": str(point), "outputFormat": "json"})
        answer = call(gw, "POST", "/cgi/delpoint", body, headers | cookie | origin_headers)
        json_error(answer, 403, "csrf_failed")
        body, headers = form({"EventID": "ivo://gaia/alerts#SimCsrf1", "ra": "1", "dec": "2"})
        json_error(call(gw, "POST", "/cgi/newevent", body, headers | cookie | origin_headers), 403, "csrf_failed")
        payload = json.dumps({"ivorn": "ivo://gaia/alerts#SimCsrf2", "ra": 1, "dec": 2}).encode()
        answer = call(
            gw, "POST", "/api/v1/alerts", payload, {"Content-Type": "application/json"} | cookie | origin_headers
        )
        json_error(answer, 403, "csrf_failed")
        body, headers = multipart(
            {
                "EventID": IVORN,
                "MJD": "60001",
                "dryRun": "0",
                "outputFormat": "json",
                "sexCat": (FIELD / "sex_cpcs.cat").read_bytes(),
            }
        )
        json_error(call(gw, "POST", "/cgi/upload", body, headers | cookie | origin_headers), 403, "csrf_failed")
        json_error(call(gw, "DELETE", f"/api/v1/datapoints/{point}", b"", cookie | origin_headers), 403, "csrf_failed")
    assert not deleted(gw, point)
    assert events_named(gw, "ivo://gaia/alerts#SimCsrf1") == 0 and events_named(gw, "ivo://gaia/alerts#SimCsrf2") == 0
    assert mongo(gw).uploads.count_documents({}) == 0


def test_our_own_pages_write_with_the_token_or_from_our_origin(gw):
    value = log_in(gw)
    cookie = {"Cookie": f"photcal_session={value}"}
    token = page_csrf(gw, value)
    point = stored_point(gw)
    body, headers = form({"followupid": str(point), "outputFormat": "json", "csrf": token})
    status, _, raw = call(gw, "POST", "/cgi/delpoint", body, headers | cookie | {"Origin": EVIL_ORIGIN})
    assert status == 200 and deleted(gw, point), raw[:300]
    # same origin, no token: what the upload page's fetch() and a form post from our page send
    payload = json.dumps({"ivorn": "ivo://gaia/alerts#SimOwn1", "ra": 1, "dec": 2}).encode()
    headers = {"Content-Type": "application/json", "Origin": own_origin(gw)}
    assert call(gw, "POST", "/api/v1/alerts", payload, headers | cookie)[0] == 201
    payload = json.dumps({"ivorn": "ivo://gaia/alerts#SimOwn2", "ra": 1, "dec": 2}).encode()
    headers = {"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}
    assert call(gw, "POST", "/api/v1/alerts", payload, headers | cookie)[0] == 201
    headers = {"Content-Type": "application/json", "X-CSRF-Token": token}
    payload = json.dumps({"ivorn": "ivo://gaia/alerts#SimOwn3", "ra": 1, "dec": 2}).encode()
    assert call(gw, "POST", "/api/v1/alerts", payload, headers | cookie)[0] == 201
    # a token of another session is no token
    other = page_csrf(gw, log_in(gw))
    body, headers = form({"EventID": "ivo://gaia/alerts#SimOwn4", "ra": "1", "dec": "2", "csrf": other})
    json_error(call(gw, "POST", "/cgi/newevent", body, headers | cookie), 403, "csrf_failed")


def test_scripts_sending_their_hashtag_are_not_asked_for_a_token(gw):
    hashtag = gw.hashtags["Victim Observatory"]
    for n, where in enumerate(("form", "query", "cookie")):
        ivorn = f"ivo://gaia/alerts#SimScript{n}"
        fields = {"EventID": ivorn, "ra": "1", "dec": "2", "outputFormat": "json"}
        headers = {"Origin": EVIL_ORIGIN}
        path = "/cgi/newevent"
        if where == "form":
            fields["hashtag"] = hashtag
        elif where == "query":
            path += "?" + urllib.parse.urlencode({"hashtag": hashtag})
        else:
            headers["Cookie"] = f"hashtag={hashtag}"
        body, form_headers = form(fields)
        status, _, raw = call(gw, "POST", path, body, form_headers | headers)
        assert status == 200, (where, raw[:300])


# -- 3. login CSRF and logout -----------------------------------------------------------------------------------


def test_a_page_elsewhere_cannot_log_the_visitor_in(gw):
    body, headers = form({"hashtag": gw.hashtags["Attacker Observatory"], "next": "/upload"})
    for others in ({"Origin": EVIL_ORIGIN}, {"Sec-Fetch-Site": "same-site"}, {"Sec-Fetch-Site": "cross-site"}, {}):
        status, answer_headers, raw = call(gw, "POST", "/login", body, headers | others)
        assert status == 403, (others, status, raw[:200])
        assert "photcal_session" not in set_cookies(answer_headers)


def test_the_login_form_token_logs_in_without_browser_headers(gw):
    status, headers, raw = call(gw, "GET", "/login")
    assert status == 200
    nonce = SimpleCookie(set_cookies(headers)["photcal_login"])["photcal_login"].value
    found = re.search(rb'name="csrf" value="([^"]+)"', raw)
    assert found is not None, raw[:300]
    token = found.group(1).decode()
    body, form_headers = form({"hashtag": gw.hashtags["Victim Observatory"], "csrf": token})
    status, headers, raw = call(gw, "POST", "/login", body, form_headers | {"Cookie": f"photcal_login={nonce}"})
    assert status == 303 and "photcal_session" in set_cookies(headers), raw[:300]
    # the token of another nonce is refused
    status, headers, _ = call(
        gw, "POST", "/login", body, form_headers | {"Cookie": "photcal_login=AAAAAAAAAAAAAAAAAAAAAA"}
    )
    assert status == 403 and "photcal_session" not in set_cookies(headers)


def test_logout_is_a_post_with_the_token_and_the_old_cookie_is_dead_afterwards(gw):
    value = log_in(gw)
    cookie = {"Cookie": f"photcal_session={value}"}
    # a link (GET) does not log out: it shows the button
    status, headers, raw = call(gw, "GET", "/logout", headers=cookie)
    assert status == 200 and b'id="logout-form"' in raw and "photcal_session" not in set_cookies(headers)
    # a POST from elsewhere (no token) does not either
    body, form_headers = form({})
    status, headers, _ = call(gw, "POST", "/logout", body, form_headers | cookie | {"Origin": EVIL_ORIGIN})
    assert status == 303 and headers["Location"] == "/logout" and "photcal_session" not in set_cookies(headers)
    token = page_csrf(gw, value)
    payload = json.dumps({"ivorn": "ivo://gaia/alerts#SimBeforeLogout", "ra": 1, "dec": 2}).encode()
    json_headers = {"Content-Type": "application/json", "X-CSRF-Token": token}
    assert call(gw, "POST", "/api/v1/alerts", payload, json_headers | cookie)[0] == 201
    body, form_headers = form({"csrf": token})
    status, headers, _ = call(gw, "POST", "/logout", body, form_headers | cookie | {"Origin": own_origin(gw)})
    assert status == 303 and headers["Location"] == "/login?bye=1"
    # the saved copy of the cookie, replayed with everything a page of ours would send
    point = stored_point(gw)
    payload = json.dumps({"ivorn": "ivo://gaia/alerts#SimAfterLogout", "ra": 1, "dec": 2}).encode()
    json_error(
        call(gw, "POST", "/api/v1/alerts", payload, json_headers | cookie | {"Origin": own_origin(gw)}),
        401,
        "session_ended",
    )
    body, form_headers = form({"followupid": str(point), "csrf": token, "outputFormat": "json"})
    json_error(call(gw, "POST", "/cgi/delpoint", body, form_headers | cookie), 401, "session_ended")
    assert not deleted(gw, point) and events_named(gw, "ivo://gaia/alerts#SimAfterLogout") == 0
    # and the pages know it too
    status, headers, _ = call(gw, "GET", "/upload", headers=cookie)
    assert status == 303 and headers["Location"].startswith("/login")


# -- 5 and 12. trusted proxies: Secure cookie, client address -----------------------------------------------------


def test_the_cookie_is_secure_behind_a_trusted_tls_proxy_only(gw):
    body, headers = form({"hashtag": gw.hashtags["Victim Observatory"], "next": "/upload"})
    public = f"127.0.0.1:{gw.port}"
    behind_tls = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9", "Origin": f"https://{public}"}
    status, answer_headers, raw = call(gw, "POST", "/login", body, headers | behind_tls, source=PROXY)
    assert status == 303, raw[:300]
    line = set_cookies(answer_headers)["photcal_session"]
    assert "Secure" in line and "HttpOnly" in line and "SameSite=Strict" in line, line
    # the same headers from a client connecting directly are its own claims: not https, not our origin
    status, answer_headers, _ = call(gw, "POST", "/login", body, headers | behind_tls)
    assert status == 403 and "photcal_session" not in set_cookies(answer_headers)
    status, answer_headers, _ = call(
        gw, "POST", "/login", body, headers | {"X-Forwarded-Proto": "https", "Origin": own_origin(gw)}
    )
    assert status == 303 and "Secure" not in set_cookies(answer_headers)["photcal_session"]
