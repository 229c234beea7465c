"""Browser tests: headless Debian Chromium driven by Playwright for Python, against one real stack per module.

The stack is `photcal run` on its own nats-server and nx-27017 (as tests/compat
does), loaded with the committed synthetic field north_V. Chromium is Debian's
(`apt-get install chromium`, or `bash tools/system-deps.sh chromium`):
Playwright cannot download its own browsers here. Without /usr/bin/chromium or
the playwright package the tests skip and say so. Screenshots go to
test-artifacts/browser/.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS
from tests.integration.conftest import Stack, field_dir
from tools.devstack import standalone_stack, stop_all

FIELD = field_dir("north_V")
CHROMIUM = os.environ.get("PHOTCAL_CHROMIUM", "/usr/bin/chromium")
SHOTS = ARTIFACTS / "browser"
#: flags that keep Chromium off the (closed) network: no component updates, sync, QUIC, first-run pings
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _why_no_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed: `make install` installs the test extras"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return (
            f"no Chromium at {CHROMIUM}: install Debian's with `apt-get install chromium` "
            "(or `bash tools/system-deps.sh chromium`); Playwright cannot download its own browser here"
        )
    return None


@dataclass
class WebStack:
    stack: Stack
    truth: dict
    hashtag: str
    other_hashtag: str

    @property
    def url(self) -> str:
        return self.stack.url


@pytest.fixture(scope="module")
def web(tmp_path_factory) -> Iterator[WebStack]:
    reason = _why_no_browser()
    if reason:
        pytest.skip(reason)
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("web"),
        PHOTCAL_MONGO_DB="web",
        PHOTCAL_UPLOAD_TIMEOUT="60",
        PHOTCAL_LOG_LEVEL="INFO",
    )
    try:
        truth = stack.load_field(FIELD)
        hashtag = stack.add_observatory("Web Observatory")
        other = stack.add_observatory("Second <i>Observatory</i>")
        stack.start()
        yield WebStack(stack, truth, hashtag, other)
    finally:
        stop_all(stack, servers)


@pytest.fixture(scope="module")
def chromium(web):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, web):
    """A fresh browser context (no cookies) and page; any JavaScript dialog (an injected alert()) fails the test."""
    context = chromium.new_context(base_url=web.url, viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []

    def refuse(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(30_000)
    yield page
    context.close()
    assert not dialogs, f"a script ran from data: {dialogs}"
    assert not errors, f"JavaScript errors on the page: {errors}"


def watched_page(chromium, base_url: str, width: int) -> Iterator:
    """A fresh page ``width`` px wide; a page error, a console error or a dialog fails the test.

    Console errors a test provokes on purpose (the 409 of a duplicate upload, a refused form's 400)
    go in ``page.expected_errors``; ``page.width`` is the viewport's width.
    """
    context = chromium.new_context(base_url=base_url, viewport={"width": width, "height": 860})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text} ({m.location.get('url')})") if m.type == "error" else None
        ),
    )

    def refuse(dialog) -> None:
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", refuse)
    page.set_default_timeout(30_000)
    page.width = width
    page.expected_errors = []
    yield page
    context.close()
    unexpected = [p for p in problems if not any(e in p for e in page.expected_errors)]
    assert not unexpected, unexpected


def shot(page, name: str, full_page: bool = True) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def login(page, hashtag: str, next_path: str = "/upload") -> None:
    page.goto(f"/login?next={next_path}")
    page.fill("#hashtag", hashtag)
    page.click("#login-submit")
    page.wait_for_url(f"**{next_path}")
