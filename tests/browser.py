"""Headless Debian Chromium driven by chromedriver, for the web-page test and screenshots."""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",  # this machine's network is closed: no phoning home
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def headless_chrome(*, width: int = 1400, height: int = 1800):
    """A Selenium driver for Debian's Chromium (no browser downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM and CHROMEDRIVER):
        raise FileNotFoundError("chromium and chromedriver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def open_page(browser, url: str) -> None:
    """Load the ``ser app`` page and wait for its Score button."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.ID, "score"))


def upload_and_score(
    browser, path: Path, *, compare: str | None = None, labels: tuple[str, ...] = ()
) -> None:
    """Upload ``path``, pick the comparison ``compare``, tick ``labels``, press Score and
    wait for an answer."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(path))
    # Once the upload is done, the audio input turns into a player.
    WebDriverWait(browser, 30).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "input[type=file]")
    )
    if compare is not None:
        option = browser.find_element(
            By.XPATH, f"//*[@id='compare']//label[normalize-space()='{compare}']"
        )
        option.click()
    for label in labels:
        browser.find_element(
            By.XPATH, f"//*[@id='labels']//label[normalize-space()='{label}']"
        ).click()
    browser.find_element(By.ID, "score").click()
    WebDriverWait(browser, 120).until(
        lambda d: (
            d.find_element(By.ID, "status").text.strip()
            or "@champion:" in d.find_element(By.ID, "summary").text
        )
    )
