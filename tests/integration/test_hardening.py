"""What an attacker and an operator found on a running stack (issue 16: items 4, 7, 9, 10, 12), over real HTTP.

One `photcal run` stack for the module (real NATS, real database) with small
limits, so each finding is reached in a few dozen requests. Every test
speaks from its own loopback address (127.0.0.x): the per-address budgets of
one test do not spend another's.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import socket
import subprocess
import time
import urllib.parse
from typing import Any

import nats
import pymongo
import pytest

from shared.hashtags import new_hashtag
from shared.http_errors import CPCS_BODY_LIMIT
from tests.integration.conftest import PHOTCAL, Stack, wait_until
from tools.devstack import standalone_stack, stop_all
from tools.infra import free_port

pytestmark = pytest.mark.integration

IVORN = "ivo://gaia/alerts#SimHardening"
LIMITS: dict[str, Any] = dict(
    PHOTCAL_RATE_LIMIT_IP_PER_S="0.01",
    PHOTCAL_RATE_LIMIT_IP_BURST="30",
    PHOTCAL_RATE_LIMIT_HASHTAG_PER_S="0.01",
    PHOTCAL_RATE_LIMIT_HASHTAG_BURST="20",
    PHOTCAL_RATE_LIMIT_READ_PER_S="0.01",
    PHOTCAL_RATE_LIMIT_READ_BURST="40",
    PHOTCAL_RATE_LIMIT_AUTH_FAILURES_PER_S="0.01",
    PHOTCAL_RATE_LIMIT_AUTH_FAILURES_BURST="10",
    PHOTCAL_HTTP_HEADER_TIMEOUT="2",
    PHOTCAL_HTTP_BODY_GRACE="2",
    PHOTCAL_HTTP_MIN_BODY_RATE="20000",
    PHOTCAL_HTTP_MAX_CONNECTIONS_PER_IP="5",
)
#: ivorns a link has to carry through unchanged: %, #, /, +, unicode (spaces are not valid ivorns)
ODD_IVORNS = ["ivo://rt/pct2#b%42", "ivo://rt/a+b/c#d%2Fe%25", "ivo://rt/ünï/çødé#Ω+1", "ivo://rt/x/y#z/w%20v"]

OBSERVATORIES = ("Flood", "Delete A", "Delete B", "Reader", "Ids", "Uploader")
_next_address = iter(range(10, 250))


def address() -> str:
    """A loopback address no other test in the module speaks from."""
    return f"127.0.0.{next(_next_address)}"


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("hardening"), PHOTCAL_MONGO_DB="hardening", PHOTCAL_LOG_LEVEL="INFO", **LIMITS
    )
    try:  # torn down even when the start fails (a stack left running would hold its ports)
        for name in OBSERVATORIES:  # each test that spends a hashtag's budget has its own
            stack.add_observatory(name)
        for ivorn in [IVORN, *ODD_IVORNS]:
            stack.cli("alert", "add", "--ivorn", ivorn, "--ra", "10.5", "--dec", "20.5")
        stack.start()
        yield stack
    finally:
        stop_all(stack, servers)


def connect(stack: Stack, source: str, timeout: float = 30) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=timeout, source_address=(source, 0))
    sock.settimeout(timeout)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer (Content-Length bodies: what aiohttp sends for these)."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {raw[:200]!r}")
        raw += chunk
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def request(
    stack: Stack, method: str, path: str, source: str, body: bytes = b"", headers: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    head = {"Host": "photcal", "Connection": "close", "Content-Length": str(len(body))} | (headers or {})
    with connect(stack, source) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\n".encode()
            + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode()
            + b"\r\n"
            + body
        )
        return read_answer(sock)


def get(stack: Stack, path: str, source: str, **params: str) -> tuple[int, dict[str, str], bytes]:
    return request(stack, "GET", path + ("?" + urllib.parse.urlencode(params) if params else ""), source)


def refused(answer, status: int, code: str | None = None) -> dict:
    got, headers, raw = answer
    assert got == status, (got, raw[:300])
    assert headers.get("content-type", "").startswith("application/json"), headers
    body = json.loads(raw)
    assert body["status"] == "error" and body["message"] and "Traceback" not in raw.decode(), body
    if code is not None:
        assert body["error"] == code, body
    return body


def quoted(ivorn: str) -> str:
    return urllib.parse.quote(ivorn, safe="")


# -- 4. rate limits ---------------------------------------------------------------------------------------------


def test_new_events_by_get_count_against_the_hashtag(hard):
    hashtag, ip = hard.hashtags["Flood"], address()
    answers = [
        get(
            hard,
            "/cgi/newevent",
            ip,
            hashtag=hashtag,
            EventID=f"ivo://rt/flood#e{i}",
            ra="1",
            dec="2",
            outputFormat="json",
        )
        for i in range(25)
    ]
    assert [a[0] for a in answers[:20]] == [200] * 20, [a[2][:200] for a in answers[:3]]
    body = refused(answers[20], 429, "rate_limited")
    assert "hashtag" in body["message"] and int(answers[20][1]["retry-after"]) >= 1
    assert len(answers[20][2].decode()) <= CPCS_BODY_LIMIT  # a CPCS path: BHTOM shows it (characters)
    client: pymongo.MongoClient[dict] = pymongo.MongoClient(hard.env["PHOTCAL_MONGO_URL"])
    try:
        assert client["hardening"].alerts.count_documents({"ivorn": {"$regex": "^ivo://rt/flood#"}}) == 20
    finally:
        client.close()


def test_guessing_hashtags_is_refused_after_a_few_failures(hard):
    ip = address()
    answers = [get(hard, "/cgi/delpoint", ip, hashtag=new_hashtag(), followupid="1") for _ in range(14)]
    assert [a[0] for a in answers[:10]] == [401] * 10
    body = refused(answers[10], 429, "rate_limited")
    assert "hashtag" in body["message"] and int(answers[10][1]["retry-after"]) >= 1
    # a known hashtag from that address waits too (the guesser cannot tell which would have worked)
    refused(get(hard, "/cgi/delpoint", ip, hashtag=hard.hashtags["Reader"], followupid="1"), 429)
    # another address is not affected
    assert get(hard, "/cgi/delpoint", address(), hashtag=new_hashtag(), followupid="1")[0] == 401


def test_writes_by_get_count_as_writes_per_address(hard):
    ip, tags = address(), [hard.hashtags["Delete A"], hard.hashtags["Delete B"]]
    # known hashtags (no failures), two of them (each under its own limit): only the address limit is left
    answers = [
        get(hard, "/followup/cgi/delpoint", ip, hashtag=tags[i % 2], followupid=str(10**6 + i)) for i in range(32)
    ]
    assert [a[0] for a in answers[:30]] == [404] * 30, answers[0][2][:200]
    body = refused(answers[30], 429, "rate_limited")
    assert "address" in body["message"] and int(answers[30][1]["retry-after"]) >= 1


@pytest.mark.parametrize("path", ["/get_alert_lc_data", "/api/v1/alerts"])
def test_reads_have_their_own_budget_per_address(hard, path):
    ip = address()
    params = {"alert_name": IVORN, "format": "json", "hashtag": hard.hashtags["Reader"]} if "lc_data" in path else {}
    answers = [get(hard, path, ip, **params) for _ in range(42)]
    assert [a[0] for a in answers[:40]] == [200] * 40
    refused(answers[40], 429, "rate_limited")
    assert int(answers[40][1]["retry-after"]) >= 1
    # writes from that address have their own budget
    assert get(hard, "/cgi/delpoint", ip, hashtag=hard.hashtags["Reader"], followupid="7")[0] == 404


# -- 7. ivorns decoded once ----------------------------------------------------------------------------------------


def _ivorn_on_page(page: bytes) -> str:
    found = re.search(rb"<h1[^>]*>.*?</h1>", page, re.S)
    return html.unescape(found.group(0).decode()) if found else ""


@pytest.mark.parametrize("ivorn", ODD_IVORNS)
def test_ivorns_with_percent_hash_slash_plus_unicode_are_decoded_once(hard, ivorn):
    ip = address()
    status, _h, raw = get(hard, "/api/v1/lightcurves/" + quoted(ivorn), ip)
    assert status == 200, raw[:300]
    assert json.loads(raw)["ivorn"] == ivorn
    # the site's own links: the alert list's, the light curve page's JSON and CSV links, CPCS's HTML
    status, _h, page = get(hard, "/alerts", ip, q=ivorn.rsplit("#", 1)[-1][:3], per_page="100")
    assert status == 200
    hrefs = {html.unescape(h) for h in re.findall(r'href="(/lightcurve/[^"]+)"', page.decode())}
    assert "/lightcurve/" + quoted(ivorn) in hrefs, hrefs
    status, _h, page = get(hard, "/lightcurve/" + quoted(ivorn), ip)
    assert status == 200 and html.escape(ivorn) in page.decode(), page[:500]
    links = {html.unescape(h) for h in re.findall(r'href="(/api/v1/lightcurves/[^"]+)"', page.decode())}
    assert links, page[:500]
    for link in links:
        status, _h, raw = request(hard, "GET", link, ip)
        assert status == 200, (link, raw[:200])
        assert (json.loads(raw)["ivorn"] == ivorn) if "format=csv" not in link else raw.startswith(b"mjd") or raw
    status, _h, page = get(
        hard, "/get_alert_lc_data", ip, alert_name=ivorn, format="html", hashtag=hard.hashtags["Reader"]
    )
    assert status == 200
    found = re.search(r'href="(/lightcurve/[^"]+)"', page.decode())
    assert found is not None, page[:300]
    link = html.unescape(found.group(1))
    status, _h, page = request(hard, "GET", link, ip)
    assert status == 200 and html.escape(ivorn) in page.decode()


def test_an_ivorn_with_a_space_is_a_404_not_another_event(hard):
    refused(get(hard, "/api/v1/lightcurves/" + quoted("ivo://rt/pct2#b B"), address()), 404)


# -- 9. no 500s ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"[" * 30_000, b'{"ivorn": "ivo://x/y#z", "ra": 1, "dec": 2, "name": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"],
)
def test_deeply_nested_json_is_400(hard, raw):
    answer = request(hard, "POST", "/api/v1/alerts", address(), raw, {"Content-Type": "application/json"})
    assert answer[0] == 400, answer[2][:300]
    refused(answer, 400)


@pytest.mark.parametrize(
    "method,path",
    [
        ("DELETE", "/api/v1/datapoints/{big}?hashtag={hashtag}"),
        ("GET", "/cgi/delpoint?hashtag={hashtag}&followupid={big}"),
        ("GET", "/followup/cgi/delpoint?hashtag={hashtag}&followupid={big}&outputFormat=json"),
        ("GET", "/get_alert_lc_data?alert_id={big}&format=json&hashtag={hashtag}"),
    ],
)
@pytest.mark.parametrize("big", [str(2**63), str(2**64 + 5), "9" * 40, "-" + str(2**63 + 1)])
def test_integer_ids_beyond_int64_are_400(hard, method, path, big):
    url = path.format(big=big, hashtag=hard.hashtags["Ids"])
    body = refused(request(hard, method, url, address()), 400, "bad_field")
    assert "2^63" in body["message"]


def test_an_aborted_upload_is_a_client_disconnect_not_a_500(hard):
    ip = address()
    boundary = "hardening"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="hashtag"\r\n\r\n{hard.hashtags["Uploader"]}'
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="sexCat"; filename="c.cat"\r\n\r\n'
    ).encode()
    for attempt in range(3):
        with connect(hard, ip) as sock:
            sock.sendall(
                b"POST /cgi/upload HTTP/1.1\r\nHost: photcal\r\nContent-Length: 3000000\r\n"
                b"Content-Type: multipart/form-data; boundary="
                + boundary.encode()
                + b"\r\n\r\n"
                + head
                + b"12.000 0.010 10.000 20.000\n" * 20_000
            )
            time.sleep(0.3)
            if attempt:  # the first one closes politely (FIN), the others reset (RST)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    wait_until(lambda: hard.log().count('"client_disconnected"') >= 3)
    status, _h, metrics = get(hard, "/metrics", address())
    text = metrics.decode()
    upload_lines = [
        line for line in text.splitlines() if line.startswith("photcal_http_requests_total") and "/cgi/upload" in line
    ]
    assert any('status="client_disconnected"' in line for line in upload_lines), upload_lines
    assert not any('status="5' in line for line in upload_lines), upload_lines
    log = hard.log()
    assert '"unhandled_error"' not in log and "Traceback" not in log

    async def published() -> int:
        nc = await nats.connect(hard.env["PHOTCAL_NATS_URL"])
        try:
            return (await nc.jetstream().stream_info("UPLOADS")).state.last_seq
        finally:
            await nc.close()

    assert asyncio.run(published()) == 0


# -- 10. slow and many connections ------------------------------------------------------------------------------


def _closed_by_server(sock: socket.socket, trickle: bytes, every: float = 0.25, give_up: float = 30.0) -> bytes:
    """Trickle ``trickle`` one byte at a time until the server answers or closes; what it sent back."""
    deadline = time.monotonic() + give_up
    sock.setblocking(False)
    for byte in trickle:
        if time.monotonic() > deadline:
            break
        try:
            data = sock.recv(65536)
            if data:
                return data + _rest(sock)
            return b"closed"
        except BlockingIOError:
            pass
        except ConnectionError:
            return b"closed"
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionError):
            return b"closed"
        time.sleep(every)
    return b""


def _rest(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (OSError, TimeoutError):
        pass
    return out


def test_headers_trickled_in_are_cut(hard):
    with connect(hard, address()) as sock:
        sock.sendall(b"GET /alerts HTTP/1.1\r\nHost: photcal\r\n")
        got = _closed_by_server(sock, b"X-Slow: " + b"a" * 200)
    assert got, "the server kept a connection whose headers never ended"


def test_a_body_trickled_in_is_408(hard):
    with connect(hard, address()) as sock:
        sock.sendall(
            b"POST /api/v1/uploads HTTP/1.1\r\nHost: photcal\r\nContent-Length: 1000000\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n\r\n--x\r\n"
        )
        got = _closed_by_server(sock, b"a" * 400)
    assert got and got != b"closed", "the server kept reading a body at a few bytes a second"
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.split()[1] == b"408", head
    assert json.loads(body[: body.rindex(b"}") + 1])["error"] == "slow_body"


def test_connections_per_address_are_bounded(hard):
    ip = address()
    held = [connect(hard, ip) for _ in range(5)]
    try:
        with connect(hard, ip) as extra:
            extra.sendall(b"GET /api/v1/alerts HTTP/1.1\r\nHost: photcal\r\nConnection: close\r\n\r\n")
            try:
                answer = extra.recv(65536)
            except ConnectionError:
                answer = b""
            assert answer == b"", answer[:200]
        # another address is served meanwhile
        assert get(hard, "/api/v1/alerts", address())[0] == 200
    finally:
        for sock in held:
            sock.close()
    assert wait_until(lambda: _served(hard, ip), timeout=10)


def _served(stack: Stack, ip: str) -> bool:
    try:
        return get(stack, "/api/v1/alerts", ip)[0] == 200
    except ConnectionError:
        return False


def test_a_catalogue_of_millions_of_comment_lines_is_413_with_the_numbers(hard):
    boundary = "lines"
    catalogue = b"#   1 MAG_AUTO\n#   2 MAGERR_AUTO\n#   3 ALPHA_J2000\n#   4 DELTA_J2000\n" + b"#\n" * 9_400_000
    fields = {
        "hashtag": hard.hashtags["Uploader"],
        "EventID": IVORN,
        "MJD": "60100.5",
        "dryRun": "1",
        "outputFormat": "json",
    }
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="sexCat"; filename="c.cat"\r\n\r\n'.encode()
        + catalogue
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = request(
        hard, "POST", "/api/v1/uploads", address(), body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    message = refused(answer, 413, "too_many_lines")["message"]
    assert "9,400,004 lines" in message and "200,000 rows" in message


# -- 12. smaller --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/lightcurve/%2e%2e/%2e%2e/metrics",
        "/lightcurve/%2E%2E/%2e%2E/healthz",
        "/lightcurve/x/%2e%2e/%2e%2e/readyz",
        "/api/v1/lightcurves/%2e%2e/%2e%2e/%2e%2e/metrics",
        "/static/%2e%2e/%2e%2e/metrics",
        "/lightcurve/./../metrics",
    ],
)
def test_dot_segments_never_reach_another_path_of_the_lightcurve_service(hard, path):
    status, headers, raw = request(hard, "GET", path, address())
    assert 400 <= status < 500, (status, raw[:200])
    assert b"photcal_http_requests_total" not in raw and b'"service": "lightcurve"' not in raw
    assert b'"service":"lightcurve"' not in raw.replace(b" ", b"")


def test_the_server_header_names_no_versions(hard):
    ip = address()
    for path in ("/", "/api/v1/alerts", "/no/such/page", "/healthz"):
        status, headers, _raw = get(hard, path, ip)
        assert headers.get("server") == "photcal", (path, headers.get("server"))
        assert headers.get("x-content-type-options") == "nosniff", path
    with connect(hard, ip) as sock:  # a request the HTTP parser refuses
        sock.sendall(b"GET / HTTP/1.1\r\nHost: photcal\r\nBad Header\r\n\r\n")
        got = _rest(sock)
    assert b"Python" not in got and b"aiohttp" not in got, got[:300]


@pytest.mark.parametrize(
    "path",
    [
        "/list_of_alerts?hashtag={h}",
        "/followup/list_of_alerts?format=html&hashtag={h}",
        "/get_alert_lc_data?format=html&hashtag={h}&alert_name=" + quoted(IVORN),
        "/cgi/newevent?outputFormat=html&hashtag=nosuchhashtag",
        "/alerts",
        "/login",
        "/lightcurve/" + quoted(IVORN),
    ],
)
def test_html_answers_send_csp_and_framing_headers(hard, path):
    status, headers, raw = request(hard, "GET", path.format(h=hard.hashtags["Reader"]), address())
    assert headers.get("content-type", "").startswith("text/html"), (path, status, headers)
    csp = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src" in csp and "unsafe-inline" not in csp, csp
    assert headers.get("x-frame-options") == "DENY" and headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy")
    if b"<style>" in raw:  # the one inline style the CPCS pages have is allowed by its hash
        import base64
        import hashlib

        found = re.search(rb"<style>(.*?)</style>", raw, re.S)
        assert found is not None, raw[:300]
        style = found.group(1)
        assert "'sha256-" + base64.b64encode(hashlib.sha256(style).digest()).decode() + "'" in csp


def test_photcal_run_fails_fast_when_nats_is_not_there(tmp_path):
    # (a MongoDB that is not there yet is waited for: test_faults' late-database test)
    url = f"nats://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTCAL_")}
    # a database URL too: nothing embedded is started, so nothing is left behind if this ever hangs
    env |= {
        "PHOTCAL_NATS_URL": url,
        "PHOTCAL_MONGO_URL": f"mongodb://127.0.0.1:{free_port()}",
        "PHOTCAL_DATA_DIR": str(tmp_path / "data"),
        "PHOTCAL_HTTP_PORT": str(free_port()),
    }
    done = subprocess.run([*PHOTCAL, "run"], env=env, capture_output=True, text=True, timeout=45)
    assert done.returncode == 1, (done.returncode, done.stderr[-500:])
    assert f"cannot reach NATS at {url}: start it or unset PHOTCAL_NATS_URL" in done.stderr, done.stderr[-500:]
    assert "Traceback" not in done.stderr
