"""Webhook signing, the public-address check and the retry schedule (shared/webhooks.py, services/notify/backoff.py)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest

from services.notify.backoff import next_delay, retry_in
from shared.contracts.errors import ErrorCode
from shared.errors import BadInput
from shared.webhooks import check_url, parse_url, refused_address, signature, verify

SECRET = "whsec_test"
BODY = b'{"upload_id": "abc", "status": "ok"}'


def test_the_signature_is_an_hmac_of_the_timestamp_and_the_body():
    header = signature(SECRET, BODY, timestamp=1_700_000_000)
    t, v1 = header.split(",")
    assert t == "t=1700000000"
    assert v1 == "v1=" + hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()


def test_a_receiver_accepts_a_fresh_signature_and_refuses_a_changed_body_key_or_old_one():
    header = signature(SECRET, BODY, timestamp=1_700_000_000)
    assert verify(SECRET, BODY, header, now=1_700_000_100)
    assert not verify(SECRET, BODY + b" ", header, now=1_700_000_100)
    assert not verify("whsec_other", BODY, header, now=1_700_000_100)
    assert not verify(SECRET, BODY, header, now=1_700_000_000 + 301)  # a replay after the tolerance
    assert not verify(SECRET, BODY, header.replace("t=1700000000", "t=1700000050"), now=1_700_000_100)
    assert not verify(SECRET, BODY, "garbage", now=1_700_000_100)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.7",
        "172.16.4.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1%eth0",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::",
    ],
)
def test_loopback_private_link_local_unique_local_and_multicast_addresses_are_refused(address):
    assert refused_address(address) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "193.0.14.129", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_public_addresses_may_be_called(address):
    assert refused_address(address) is None


@pytest.mark.parametrize(
    "url",
    ["ftp://example.org/x", "file:///etc/passwd", "example.org/hook", "http:///nohost", "https://u:p@example.org/"],
)
def test_only_plain_http_and_https_urls_are_taken(url):
    with pytest.raises(BadInput) as refused:
        parse_url(url)
    assert refused.value.code == ErrorCode.CALLBACK_URL_REFUSED


def test_every_resolved_address_is_checked_and_literal_ones_too():
    async def refused(url: str) -> str:
        with pytest.raises(BadInput) as caught:
            await check_url(url, allow_private=False)
        assert caught.value.code == ErrorCode.CALLBACK_URL_REFUSED
        return caught.value.message

    assert "loopback" in asyncio.run(refused("http://localhost:8080/hook"))
    assert "private" in asyncio.run(refused("http://10.1.2.3/hook"))
    assert "link-local" in asyncio.run(refused("http://[fe80::1]/hook"))
    assert "does not resolve" in asyncio.run(refused("http://no-such-host.invalid/hook"))
    assert asyncio.run(check_url("http://localhost:8080/hook", allow_private=True)) == "http://localhost:8080/hook"


def test_retries_double_up_to_the_cap_and_stop_at_the_bound():
    assert [next_delay(n, initial_s=5, max_s=60) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert retry_in(1, 0, initial_s=5, max_s=60, retry_for_s=3600) == 5
    assert retry_in(3, 3590, initial_s=5, max_s=60, retry_for_s=3600) is None  # 20 s more would pass the bound
