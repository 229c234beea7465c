"""Pure rules of the gateway's hardening: trusted proxies, same-origin, login tokens, sessions."""

from __future__ import annotations

import pytest

from services.ingest.proxies import TrustedProxies, parse_networks
from shared import session

SECRET = b"k" * 32
HASHTAG = "ZKR_abcdefghijklmnopqrstuvwxyz012345"


def test_forwarded_for_counts_only_from_a_trusted_proxy():
    proxies = TrustedProxies(parse_networks("10.244.0.0/16, 192.168.7.1"))
    # a client connecting directly: its header is its own claim
    assert proxies.client_address("203.0.113.5", "1.2.3.4") == "203.0.113.5"
    # through the ingress: the right-most entry that is not one of our proxies
    assert proxies.client_address("10.244.3.9", "6.6.6.6, 198.51.100.7") == "198.51.100.7"
    assert proxies.client_address("10.244.3.9", "6.6.6.6, 198.51.100.7, 192.168.7.1") == "198.51.100.7"
    assert proxies.client_address("10.244.3.9", "") == "10.244.3.9"
    assert proxies.client_address("10.244.3.9", "10.244.0.1") == "10.244.0.1"  # all ours: the left-most
    assert proxies.client_address("10.244.3.9", "[2001:db8::1]:443") == "2001:db8::1"
    assert proxies.client_address("::ffff:10.244.3.9", "198.51.100.8") == "198.51.100.8"
    # nobody trusted: nothing believed (what PHOTCAL_TRUST_FORWARDED_FOR=1 alone now means)
    assert TrustedProxies().client_address("10.244.3.9", "1.2.3.4") == "10.244.3.9"


def test_forwarded_proto_counts_only_from_a_trusted_proxy():
    proxies = TrustedProxies(parse_networks("127.0.0.2/32"))
    assert proxies.scheme("127.0.0.2", "https", "http") == "https"
    assert proxies.scheme("127.0.0.2", "https, http", "http") == "https"
    assert proxies.scheme("127.0.0.2", "gopher", "http") == "http"
    assert proxies.scheme("127.0.0.1", "https", "http") == "http"


def test_a_bad_proxy_entry_is_named():
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_networks("10.0.0.0/8, not-an-ip")


@pytest.mark.parametrize(
    "headers,ok",
    [
        ({"Origin": "http://photcal.test:8080"}, True),
        ({"Origin": "HTTP://Photcal.test:8080"}, True),
        ({"Origin": "http://photcal.test:8081"}, False),  # another port of the same host: same site, not us
        ({"Origin": "https://photcal.test:8080"}, False),
        ({"Origin": "http://evil.test:8080"}, False),
        ({"Origin": "null"}, False),
        ({"Origin": "http://photcal.test:8081", "Sec-Fetch-Site": "same-origin"}, False),  # Origin decides
        ({"Sec-Fetch-Site": "same-origin"}, True),
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, False),
        ({}, False),
    ],
)
def test_same_origin(headers, ok):
    assert session.same_origin(headers, "http://photcal.test:8080") is ok


def test_default_ports_are_the_same_origin():
    assert session.same_origin({"Origin": "https://photcal.test"}, "https://photcal.test:443")
    assert session.same_origin({"Origin": "https://photcal.test:443"}, "https://photcal.test")
    assert not session.same_origin({"Origin": "http://photcal.test"}, "https://photcal.test")


def test_login_token_is_bound_to_its_nonce():
    nonce = session.new_login_nonce()
    token = session.login_token(nonce, SECRET)
    assert session.check_login_token(nonce, token, SECRET)
    assert not session.check_login_token(session.new_login_nonce(), token, SECRET)
    assert not session.check_login_token(nonce, token, b"other secret")
    assert not session.check_login_token(None, token, SECRET) and not session.check_login_token(nonce, None, SECRET)


def test_each_login_has_its_own_session_id():
    a, b = session.read(session.encode(HASHTAG, SECRET), SECRET), session.read(session.encode(HASHTAG, SECRET), SECRET)
    assert a is not None and b is not None
    assert a.hashtag == b.hashtag == HASHTAG and a.session_id != b.session_id
    assert a.expires > 0 and session.read("junk", SECRET) is None


class _Request(dict):
    def __init__(self, origin: str) -> None:
        super().__init__({session.ORIGIN_KEY: origin})


def test_cookie_is_secure_over_https_or_when_forced(monkeypatch):
    monkeypatch.setattr(session, "_forced_secure", None)
    monkeypatch.delenv("PHOTCAL_COOKIE_SECURE", raising=False)
    assert session.cookie_secure(_Request("https://photcal.test"))
    assert not session.cookie_secure(_Request("http://photcal.test"))
    monkeypatch.setattr(session, "_forced_secure", None)
    monkeypatch.setenv("PHOTCAL_COOKIE_SECURE", "1")
    assert session.cookie_secure(_Request("http://photcal.test"))
    monkeypatch.setattr(session, "_forced_secure", None)
