"""
Browser fixtures: Playwright's sync API driving Debian's chromium (no browser download).

`.ci/run` installs the `chromium` package; without it these tests fail with that advice
rather than skip. Set E2E_SCREENSHOTS to a directory (docs/screenshots) to keep
screenshots of the main pages and controls.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Locator, Page, sync_playwright

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = os.environ.get("E2E_SCREENSHOTS")
PASSWORD = "browser-test-password"  # every user these tests sign in with has it
MARGIN = 6  # pixels around a screenshot's regions


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    # Playwright's sync API keeps an asyncio loop on this thread, and Django then refuses
    # ORM calls from the test body as "async context". Nothing here is async: allow them,
    # for these tests only.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            yield browser
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    # The admin's navigation sidebar closed, as its toggle leaves it: the pages (and
    # their screenshots) get the whole width.
    context.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def sign_in(page: Page, live_server, synced) -> Callable[..., Page]:
    """Sign a user in through the admin's login form; returns the page, at `next`."""

    def sign_in_as(user: User, *, next_path: str = "/admin/") -> Page:
        page.goto(f"{live_server.url}/admin/login/?next={next_path}")
        page.fill("#id_username", user.get_username())
        page.fill("#id_password", PASSWORD)
        page.click('input[type="submit"]')
        page.wait_for_url(f"{live_server.url}{next_path}")
        return page

    return sign_in_as


@pytest.fixture
def signed_in(sign_in: Callable[..., Page]) -> Page:
    """A browser page signed in to the admin as a superuser."""
    return sign_in(User.objects.create_superuser("operator", "operator@example.com", PASSWORD))


@pytest.fixture
def screenshot(page: Page) -> Callable[..., None]:
    """Keep a screenshot under E2E_SCREENSHOTS, when set: the whole page, or the part of
    it from the first of `regions` to the last (with a margin)."""

    def take(name: str, *regions: Locator) -> None:
        if not SCREENSHOTS:
            return
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        path = str(Path(SCREENSHOTS) / f"{name}.png")
        if not regions:
            page.screenshot(path=path, full_page=True)
            return
        # No focus ring or selected text in the picture; boxes in page coordinates.
        page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
        boxes = [box for region in regions if (box := region.bounding_box()) is not None]
        left = max(min(box["x"] for box in boxes) - MARGIN, 0)
        top = max(min(box["y"] for box in boxes) - MARGIN, 0)
        right = max(box["x"] + box["width"] for box in boxes) + MARGIN
        bottom = max(box["y"] + box["height"] for box in boxes) + MARGIN
        page.screenshot(path=path, full_page=True, clip={
            "x": left, "y": top, "width": right - left, "height": bottom - top,
        })

    return take
