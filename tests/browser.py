"""Shared Playwright launcher for the browser tests (Debian's chromium, never a download)."""

import os
import shutil

import pytest

from .conftest import BROWSER_UA

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "test-artifacts")


def require_chromium():
    if not os.path.exists(CHROMIUM) and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


def launch(playwright):
    """A headless Chromium and a context whose user agent is a normal desktop browser
    (headless user agents are treated as bots by the middleware)."""
    require_chromium()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    context = browser.new_context(user_agent=BROWSER_UA, viewport={"width": 1280, "height": 900})
    return browser, context


def screenshot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    return path
