"""The pure parts of the hardening (issue 16): id and JSON bounds, the forwarder's path check, budgets, limits."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from photcal_cli.reachable import nats_addresses, nats_reachable, redacted
from services.ingest.forward import upstream_path
from services.ingest.parsing import MAX_HEADER_LINES, parse_catalogue
from services.ingest.ratelimit import TokenBucket
from shared.bounds import INT64_MAX, json_depth, loads_json, parse_id
from shared.cpcs_http import page
from shared.errors import BadCatalogue, BadInput, NotFound, PayloadTooLarge
from shared.http_server import HTML_CSP
from tools.infra import free_port

HEADER = b"#   1 MAG_AUTO\n#   2 MAGERR_AUTO\n#   3 ALPHA_J2000\n#   4 DELTA_J2000\n"
ROWS = b"12.0 0.01 10.0 20.0\n13.0 0.02 10.1 20.1\n"


@pytest.mark.parametrize("text,number", [("0", 0), ("42", 42), (" 7 ", 7), ("+5", 5), (str(INT64_MAX), INT64_MAX)])
def test_ids_within_int64_are_read(text, number):
    assert parse_id(text, "followupid") == number


@pytest.mark.parametrize("text", [str(INT64_MAX + 1), str(2**64), "9" * 5000, "-1", "1.0", "1e3", "", "0x10", "١٢"])
def test_ids_beyond_int64_or_not_integers_are_bad_field(text):
    with pytest.raises(BadInput) as info:
        parse_id(text, "followupid")
    assert info.value.code == "bad_field" and "2^63" in info.value.message and len(info.value.message) < 100


def test_json_depth_skips_brackets_inside_strings():
    assert json_depth('{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert json_depth(r'["\"[[[", [[]]]') == 3
    assert json_depth("[" * 30_000) == 30_000


@pytest.mark.parametrize(
    "text,code",
    [
        ("[" * 30_000, "bad_json"),
        ('{"a":' * 20 + "1" + "}" * 20, "bad_json"),
        (" " * 70_000 + "{}", "too_large"),
        ("{", "bad_json"),
    ],
)
def test_deep_long_or_broken_json_is_refused_before_parsing(text, code):
    with pytest.raises(BadInput) as info:
        loads_json(text)
    assert info.value.code == code


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
        max_leaves=60,
    )
)
def test_any_json_is_parsed_or_refused_with_our_error(value):
    text = json.dumps(value)
    try:
        assert loads_json(text) == json.loads(text) or text != text  # NaN compares unequal: still parsed
    except BadInput as err:
        assert err.code in {"bad_json", "too_large"}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_json_or_bad_json(text):
    try:
        loads_json(text)
    except BadInput as err:
        assert err.code in {"bad_json", "too_large"}


@pytest.mark.parametrize(
    "path",
    [
        "/lightcurve/%2e%2e/%2e%2e/metrics",
        "/lightcurve/%2E%2e/x",
        "/a/./b",
        "/a/../b",
        "/static/%2e/app.css",
        "/lightcurve/x/%2e%2e?x=1",
    ],
)
def test_dot_segments_are_not_forwarded(path):
    with pytest.raises(BadInput) as info:
        upstream_path(path)
    assert info.value.code == "bad_path"


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz/", "/metrics?x=1"])
def test_internal_paths_are_not_forwarded(path):
    with pytest.raises(NotFound):
        upstream_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "/lightcurve/ivo%3A%2F%2Frt%2Fpct2%23b%2542",
        "/api/v1/lightcurves/a%2Bb%20c?format=csv",
        "/lightcurve/..x",
        "/lightcurve/%2e%2e%2fmetrics",
        "/static/app.css",
    ],
)
def test_other_paths_are_forwarded_exactly_as_sent(path):
    assert upstream_path(path) == path


def test_waiting_on_a_bucket_takes_nothing():
    now = [0.0]
    bucket = TokenBucket(rate=1.0, burst=2, clock=lambda: now[0])
    assert bucket.wait("a") == 0.0
    assert bucket.take("a") == 0.0 and bucket.take("a") == 0.0
    assert bucket.wait("a") == pytest.approx(1.0) and bucket.wait("a") == pytest.approx(1.0)
    now[0] = 1.0
    assert bucket.wait("a") == 0.0 and bucket.take("a") == 0.0 and bucket.wait("a") > 0


def test_a_file_of_millions_of_comment_lines_is_refused_before_it_is_read():
    with pytest.raises(PayloadTooLarge) as info:
        parse_catalogue(HEADER + b"#\n" * 9_400_000 + ROWS, "c.cat")
    assert info.value.code == "too_many_lines" and "9,400,006 lines" in info.value.message


def test_a_header_longer_than_any_sextractor_header_is_refused():
    with pytest.raises(BadCatalogue) as info:
        parse_catalogue(HEADER + b"# note\n" * (MAX_HEADER_LINES + 10) + ROWS, "c.cat")
    assert info.value.code == "bad_header" and f"{MAX_HEADER_LINES:,}" in info.value.message


def test_an_honest_header_and_comments_are_still_read():
    parsed = parse_catalogue(HEADER + b"# note\n" * 500 + ROWS * 1000, "c.cat")
    assert parsed.n_rows == 2000


def test_the_cpcs_pages_are_styled_by_the_sites_stylesheet_which_the_csp_allows():
    html = page("t", "<p>x</p>")
    assert "<style>" not in html and '<link rel="stylesheet" href="/static/app.css">' in html
    assert "style-src 'self'" in HTML_CSP and "unsafe-inline" not in HTML_CSP
    assert "script-src" not in HTML_CSP and "default-src 'none'" in HTML_CSP and "frame-ancestors 'none'" in HTML_CSP


def test_urls_are_printed_without_their_password():
    assert (
        redacted("mongodb://user:secret@db1:27017,db2/photcal?replicaSet=rs")
        == "mongodb://db1:27017,db2/photcal?replicaSet=rs"
    )
    assert redacted("nats://tok@n1:4222,nats://n2:4222") == "nats://n1:4222,nats://n2:4222"
    assert nats_addresses("nats://a:1,b:2, tls://c") == [("a", 1), ("b", 2), ("c", 4222)]


def test_nothing_listening_is_not_reachable():
    assert not nats_reachable(f"nats://127.0.0.1:{free_port()}", seconds=0.5)
