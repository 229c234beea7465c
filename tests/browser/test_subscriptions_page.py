"""The webhook subscriptions page (/subscriptions) as a person uses it, at a desktop's 1280 px and a phone's
390 px, with no console error: logged out it asks to log in; logged in, add a subscription and see it listed,
a bad URL says why, delete asks first, the secret rotates. Screenshots: test-artifacts/browser/subs_*.png."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.browser.conftest import login, shot, watched_page

pytestmark = pytest.mark.integration

WIDTHS = (1280, 390)
PUBLIC = "https://93.184.215.14/hook"  # a public address literal: checked without DNS


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def screen(request, chromium, web) -> Iterator:
    """A fresh page at the parametrised width; any page error, console error or dialog fails the test."""
    yield from watched_page(chromium, web.url, request.param)


def _look(page, name: str) -> None:
    assert page.locator("header nav a[href='/alerts']").count() == 1, page.url
    width = page.evaluate("() => document.scrollingElement.scrollWidth")
    assert width <= page.width, f"{page.url} scrolls sideways at {page.width} px: {width} px wide"
    shot(page, f"subs_{name}_{page.width}")


def _rows(page) -> list[str]:
    return page.locator("#subscriptions-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.subscriptionId)")


def test_logged_out_the_page_asks_to_log_in_then_comes_back(screen, web):
    page = screen
    page.goto("/subscriptions")
    page.wait_for_url("**/login?next=**")
    assert "subscriptions" in page.url
    page.fill("#hashtag", web.hashtag)
    page.click("#login-submit")
    page.wait_for_url("**/subscriptions")
    assert page.locator("h1").inner_text() == "Webhook subscriptions"
    _look(page, "after_login")


def test_add_list_refuse_delete_and_rotate(screen, web):
    page = screen
    page.expected_errors += ["status of 400 (Bad Request)", "status of 404 (Not Found)"]  # the refused forms
    login(page, web.hashtag, "/subscriptions")
    # the page is in the logged-in header, and linked from my uploads
    assert page.locator("#my-subscriptions").get_attribute("href") == "/subscriptions"
    before = set(_rows(page)) if page.locator("#subscriptions-table").count() else set()
    # add one to every event
    url = f"{PUBLIC}/{page.width}"
    page.fill("#url", url)
    page.check("#scope-all")
    assert page.input_value("#events") == "both"  # results and recalibrations unless asked otherwise
    page.select_option("#events", "recalibrated")
    page.click("#subscription-submit")
    page.wait_for_url("**/subscriptions?done=added*")
    assert "added" in page.inner_text("#msg-ok")
    added = [sid for sid in _rows(page) if sid not in before]
    assert len(added) == 1, (before, _rows(page))
    sid = added[0]
    row = page.locator(f'tr[data-subscription-id="{sid}"]')
    text = row.inner_text()
    assert url in text and "every event" in text and "active" in text and "none yet" in text
    assert "recalibrations only" in text
    _look(page, "added")
    # the API sees the same
    api = requests.get(f"{web.url}/api/v1/subscriptions", params={"hashtag": web.hashtag}, timeout=30).json()
    stored = {s["subscription_id"]: s for s in api["subscriptions"]}
    assert stored[sid]["events"] == ["recalibrated"]
    # a bad URL: the page again with the reason, the typed values kept
    page.fill("#url", "http://127.0.0.1:9/hook")
    page.check("#scope-mine")
    page.click("#subscription-submit")
    error = page.inner_text("#msg-error")
    assert "loopback" in error and "only public addresses" in error, error
    assert page.input_value("#url") == "http://127.0.0.1:9/hook" and page.is_checked("#scope-mine")
    _look(page, "bad_url")
    # one event named by a name the database does not have
    page.fill("#url", url)
    page.check("#scope-alert")
    page.fill("#alert", "Gaia99nothing")
    page.click("#subscription-submit")
    assert "unknown event gaia99nothing" in page.inner_text("#msg-error").lower()
    page.goto("/subscriptions")
    assert [s for s in _rows(page) if s not in before] == [sid]  # nothing else was stored
    # delete: asked first; "no" keeps it
    page.locator(f'tr[data-subscription-id="{sid}"] form.delete button').click()
    question = page.inner_text("#confirm-question")
    assert sid in question and url in question, question
    _look(page, "delete_question")
    page.click("#cancel-delete")
    page.wait_for_url("**/subscriptions")
    assert sid in _rows(page)
    page.locator(f'tr[data-subscription-id="{sid}"] form.delete button').click()
    page.click("#confirm-delete")
    page.wait_for_url("**/subscriptions?done=deleted*")
    assert "deleted" in page.inner_text("#msg-ok")
    assert sid not in (_rows(page) if page.locator("#subscriptions-table").count() else [])
    # the secret, rotated: another value, the same the API reads
    old = page.inner_text("#webhook-secret")
    assert old.startswith("whsec_")
    assert "X-Photcal-Signature" in page.inner_text("main")
    page.click("#rotate-secret")
    page.wait_for_url("**/subscriptions?done=rotated")
    new = page.inner_text("#webhook-secret")
    assert new.startswith("whsec_") and new != old
    api_secret = requests.get(f"{web.url}/api/v1/webhook-secret", params={"hashtag": web.hashtag}, timeout=30)
    assert api_secret.json()["secret"] == new
    _look(page, "rotated")


def test_another_observatorys_subscription_is_not_deletable_from_here(screen, web):
    page = screen
    made = requests.post(
        f"{web.url}/api/v1/subscriptions",
        params={"hashtag": web.other_hashtag},
        json={"url": PUBLIC, "scope": "all"},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    sid = made.json()["subscription_id"]
    page.expected_errors.append("status of 404 (Not Found)")
    login(page, web.hashtag, "/subscriptions")
    assert sid not in (_rows(page) if page.locator("#subscriptions-table").count() else [])
    # a forged form with this page's token, for the other's id: refused with the page and the reason
    token = page.locator("#subscription-form input[name=csrf]").input_value()
    page.evaluate(
        """([sid, token]) => { const f = document.createElement('form'); f.method = 'post';
        f.action = `/subscriptions/${sid}/delete`; const t = document.createElement('input'); t.type = 'hidden';
        t.name = 'csrf'; t.value = token; const c = t.cloneNode(); c.name = 'confirm'; c.value = '1';
        f.append(t, c); document.body.append(f); f.submit(); }""",
        [sid, token],
    )
    page.wait_for_load_state()
    page.wait_for_selector("#msg-error")
    assert f"this observatory has no subscription {sid}" in page.inner_text("#msg-error").lower()
    still = requests.get(f"{web.url}/api/v1/subscriptions/{sid}", params={"hashtag": web.other_hashtag}, timeout=30)
    assert still.status_code == 200
