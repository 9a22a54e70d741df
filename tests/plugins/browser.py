"""Headless Chromium (Debian's chromium and chromium-driver) through Selenium, and screenshots.

`browser` is a fresh browser per test. `static_root` is the static files collected once per
run: with DEBUG off WhiteNoise serves STATIC_ROOT only, so a gunicorn whose pages need their
CSS and JavaScript is started with gunicorn(STATIC_ROOT=str(static_root)).
`screenshot(browser, name)` writes
`var/artefacts/screenshots/<name>.png` on every run (kept after the run, for people and CI
artefacts); `make screenshots` runs the tests marked `screenshots` and copies the PNGs the
README shows into docs/screenshots/.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTEFACTS = Path(settings.BASE_DIR) / "var" / "artefacts" / "screenshots"


@pytest.fixture(scope="session")
def static_root(tmp_path_factory) -> Path:
    """`manage.py collectstatic` into a directory of this run (once; removed with pytest's tmp)."""
    from tests.support.procs import PYTHON, ROOT

    root = tmp_path_factory.mktemp("static")
    env = {**os.environ, "STATIC_ROOT": str(root)}
    args = [PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists():
            pytest.fail(f"{binary} is missing: make test installs chromium and chromium-driver", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "cd.log")), options=options
    )
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def sign_in(driver: webdriver.Chrome, base_url: str, username: str, password: str) -> None:
    """Sign in through the admin's login form and wait until the admin answers."""
    driver.get(f"{base_url}/admin/login/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(driver, 15).until(ec.url_changes(f"{base_url}/admin/login/"))


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """Save the page as var/artefacts/screenshots/<name>.png (the whole page's height)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, max(600, min(int(height) + 120, 4000)))
    path = ARTEFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
