"""Headless Chromium for the console tests: Debian's chromium and chromedriver.

Nothing downloads a browser or a driver: the driver is /usr/bin/chromedriver
(Debian's chromium-driver) and the browser /usr/bin/chromium. Without them
the browser tests skip with a loud reason, except on CI, where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)
#: Attributes that make a browser load or follow an address.
LOADING_ATTRIBUTES = frozenset(
    {"href", "src", "srcset", "action", "formaction", "poster", "data", "background", "ping"}
)
CSS_URL = re.compile(r"url\(\s*[\"']?([^\"')]*)", re.IGNORECASE)


class _Addresses(HTMLParser):
    """Collects what a page would load: loading attributes, CSS url() in styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name in LOADING_ATTRIBUTES or name == "style"):
                self.found += CSS_URL.findall(value) if name == "style" else [value]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.found += CSS_URL.findall(data)


def in_ci() -> bool:
    """True on CI, where a missing browser fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_chromium() -> None:
    """Skip (or, on CI, fail) when Debian's chromium and chromium-driver are absent."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if not missing:
        return
    why = (
        f"BROWSER TESTS NOT RUN: {', '.join(missing)} missing "
        "(apt-get install chromium chromium-driver)"
    )
    if in_ci():
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


@contextmanager
def chromium() -> Iterator[object]:
    """A fresh headless Chromium session with its own profile directory."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def loaded_addresses(html: str) -> list[str]:
    """Every address an href, src, form action or CSS url() of ``html`` names
    (parsed as a browser would: escaped text is text, not markup)."""
    parser = _Addresses()
    parser.feed(html)
    parser.close()
    return parser.found


def assert_never_loaded(html: str, reported: Iterable[str]) -> None:
    """No reported URL (nor its host) is inside an href, src or CSS url() of the page."""
    addresses = loaded_addresses(html)
    for url in reported:
        host = url.split("/")[2]
        bad = [a for a in addresses if url in a or host in a]
        assert not bad, f"a reported URL is loadable from the page: {bad}"
