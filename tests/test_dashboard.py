"""The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`, which
`make test` installs), served by the API itself over the published test lake (uvicorn on loopback).

One browser for the module; each test loads the page afresh. The screenshots land in build/
(`dashboard.png` is the README's, copied to docs/ when the page changes)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from lakecontract.artifacts import CHART_ROWS, chart_file
from lakecontract.constants import RUNS_DIR
from serving.app import create_app
from serving.pipeline_runs import LocalRuns
from serving.routes.dashboard import CHART_LIBRARY, VENDOR
from serving.settings import Settings
from tests.local_servers import free_port

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "build"
WAIT_S = 20


@pytest.fixture(scope="module")
def lake(published_lake, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dashboard") / "lake"
    shutil.copytree(published_lake.pristine_models, root / "gold" / "models")
    return root


class StandInRuns(LocalRuns):
    """The local launcher with a stand-in runner: it waits a moment, then saves a history with the
    runner's shape (what `step_functions.run_local` writes), so the page's run button is exercised
    end to end through a real process without running the pipeline."""

    def _command(self, run_id: str, fields: dict[str, str]) -> list[str]:
        history = {
            "execution": run_id,
            "status": "SUCCEEDED",
            "states": [
                {"state": "Ingest", "kind": "Task", "status": "SUCCEEDED", "seconds": 1.2, "attempts": 1, "errors": []},
                {"state": "Export", "kind": "Task", "status": "SUCCEEDED", "seconds": 0.4, "attempts": 1, "errors": []},
            ],
        }
        path = self.root / RUNS_DIR / f"{run_id}.json"
        script = f"import pathlib, time; time.sleep(2); pathlib.Path({str(path)!r}).write_text({json.dumps(history)!r})"
        return [sys.executable, "-c", script]


@pytest.fixture(scope="module")
def app(lake) -> Any:
    app = create_app(Settings(lake_root=str(lake)))
    app.state.runs = StandInRuns(str(lake))
    return app


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[str]:
    """`app` on a loopback port (uvicorn in a thread), for as long as the block runs: its base URL."""
    assert (VENDOR / CHART_LIBRARY).is_file(), "the chart library is missing: run `make dashboard` (make test does)"
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(WAIT_S)


@pytest.fixture(scope="module")
def base_url(app) -> Iterator[str]:
    with _serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_path, "Debian's chromium and chromium-driver are needed: `make test` installs them"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1100")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(browser: Any, condition: str, what: str) -> Any:
    """Poll a JavaScript expression until it is truthy; its value, or a failure naming `what`."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = browser.execute_script(f"return {condition};")
        if value:
            return value
        time.sleep(0.1)
    error = browser.execute_script("return document.getElementById('error').textContent;")
    pytest.fail(f"{what} did not happen within {WAIT_S} s (page error: {error!r})")


def _console_errors(browser: Any) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def _chart(lake: Path, symbol: str) -> dict[str, Any]:
    version = json.loads((lake / "gold" / "models" / "latest").read_text())["version"]
    return json.loads((lake / "gold" / "models" / version / chart_file(symbol)).read_text())


def test_the_page_draws_the_published_chart_and_call_from_this_origin_only(browser, base_url, lake):
    browser.get(f"{base_url}/")  # the root redirects to the dashboard
    assert browser.current_url.startswith(f"{base_url}/dashboard/")
    candles = int(_wait(browser, "document.getElementById('chart').dataset.candles", "the chart"))
    symbol = browser.execute_script("return document.getElementById('chart').dataset.symbol;")
    published = _chart(lake, symbol)
    assert candles == len(published["ts"]) == CHART_ROWS  # the synthetic lake has 700 bars a symbol
    known = [a for a in published["calls"]["actual_up"] if a is not None]
    calls = int(_wait(browser, "document.getElementById('hits').dataset.calls", "the holdout calls"))
    assert calls == len(known) > 0
    assert (
        "right" in browser.find_element("id", "hits").text
        and f"of {calls} times" in browser.find_element("id", "hits").text
    )
    _wait(browser, "document.getElementById('call').dataset.symbol", "the latest call")
    _wait(browser, "document.querySelectorAll('#board tbody tr').length", "the leaderboard")
    tables = int(_wait(browser, "document.getElementById('quality').dataset.tables", "the data-quality panel"))
    assert tables == len(json.loads(browser.execute_script("return fetch('/quality').then(r => r.text());"))["layers"])
    link = browser.find_element("css selector", "#quality-meta a")
    assert (
        link.get_attribute("href") == f"{base_url}/quality/report"
        and "halt-tier" in browser.find_element("id", "quality-meta").text
    )
    assert browser.find_element("id", "error").get_attribute("hidden") is not None
    assert _console_errors(browser) == []
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    assert resources and all(url.startswith(base_url + "/") for url in resources), resources
    for select in browser.find_elements("tag name", "select"):  # every control has its label
        labels = browser.find_elements("css selector", f"label[for='{select.get_attribute('id')}']")
        assert labels and labels[0].text, select.get_attribute("id")
    SCREENSHOTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "dashboard.png"))


def test_choosing_another_symbol_changes_the_chart_and_the_call(browser, base_url, lake):
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{base_url}/dashboard/")
    first = _wait(browser, "document.getElementById('call').dataset.symbol", "the first symbol's call")
    picker = browser.find_element("id", "symbol")
    options = [o.get_attribute("value") for o in picker.find_elements("tag name", "option")]
    other = next(s for s in options if s != first)
    picker.send_keys(Keys.END if options.index(other) == len(options) - 1 else Keys.ARROW_DOWN)  # the keyboard
    picker.send_keys(Keys.ENTER)
    _wait(browser, f"document.getElementById('call').dataset.symbol === {json.dumps(other)}", "the call to change")
    _wait(browser, f"document.getElementById('chart').dataset.symbol === {json.dumps(other)}", "the chart to change")
    shown = float(browser.execute_script("return document.getElementById('call').dataset.probUp;"))
    served = json.loads(browser.execute_script(f"return fetch('/predict/{other}').then(r => r.text());"))
    assert shown == served["prob_up"]
    assert browser.current_url.endswith(f"?symbol={other.replace('^', '%5E')}")  # a link to this view
    assert _console_errors(browser) == []


def test_an_unknown_symbol_in_the_url_shows_the_apis_message(browser, base_url):
    browser.get(f"{base_url}/dashboard/?symbol=NOPE")
    shown = "!document.getElementById('error').hidden && document.getElementById('error').textContent"
    message = _wait(browser, shown, "the error")
    assert "unknown symbol 'NOPE'" in message and "serves" in message
    assert browser.execute_script("return document.getElementById('chart').dataset.candles;") is None
    # the browser logs each 404 it was answered; nothing else may be there
    assert all("/NOPE - Failed to load resource" in e and "404" in e for e in _console_errors(browser))


def test_the_page_fits_a_phone_width_without_sideways_scrolling(browser, base_url):
    browser.set_window_size(390, 844)
    try:
        browser.get(f"{base_url}/dashboard/")
        _wait(browser, "document.getElementById('chart').dataset.candles", "the chart")
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth;")
        browser.save_screenshot(str(SCREENSHOTS / "dashboard-phone.png"))
    finally:
        browser.set_window_size(1280, 1100)


def test_static_files_carry_cache_and_security_headers(base_url):
    import httpx

    page = httpx.get(f"{base_url}/dashboard/")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    library = httpx.get(f"{base_url}/dashboard/vendor/{CHART_LIBRARY}")
    assert library.status_code == 200 and library.headers["cache-control"] == "public, max-age=3600"
    assert library.headers["etag"] and "javascript" in library.headers["content-type"]
    url = f"{base_url}/dashboard/vendor/{CHART_LIBRARY}"
    again = httpx.get(url, headers={"if-none-match": library.headers["etag"]})
    assert again.status_code == 304


def test_the_run_button_starts_a_run_shows_its_progress_and_then_its_states(browser, base_url, lake):
    browser.get(f"{base_url}/dashboard/")
    _wait(browser, "document.getElementById('runs').dataset.runs !== undefined", "the runs panel")
    before = int(browser.execute_script("return document.getElementById('runs').dataset.runs;"))
    browser.find_element("id", "run").click()
    status = _wait(
        browser,
        "document.getElementById('run-status').textContent.includes('RUNNING') && "
        "document.getElementById('run-status').textContent",
        "the progress",
    )
    run_id = status.split()[1].rstrip(":")
    ended = _wait(
        browser,
        "document.getElementById('run-status').textContent.includes('ended') && "
        "document.getElementById('run-status').textContent",
        "the end of the run",
    )
    assert f"run {run_id} ended SUCCEEDED" in ended
    assert (lake / RUNS_DIR / f"{run_id}.json").is_file()
    _wait(browser, f"document.getElementById('run-detail').dataset.run === {json.dumps(run_id)}", "the run's states")
    states = browser.find_elements("css selector", "#run-detail tbody th")
    assert [s.text for s in states] == ["Ingest", "Export"]
    assert int(browser.execute_script("return document.getElementById('runs').dataset.runs;")) == before + 1
    assert browser.find_element("id", "run").is_enabled() and _console_errors(browser) == []


def test_with_no_published_model_the_page_says_so_instead_of_going_blank(browser, tmp_path):
    with _serving(create_app(Settings(lake_root=str(tmp_path / "empty")))) as url:
        browser.get(f"{url}/dashboard/")
        shown = "!document.getElementById('error').hidden && document.getElementById('error').textContent"
        message = _wait(browser, shown, "the error")
        assert "gold/models/latest" in message or "no model" in message.lower(), message
        assert browser.find_element("id", "version").text == "no model is served"
        errors = _console_errors(browser)  # the API's 503s, logged by the browser; nothing else
        assert errors and all("503" in e for e in errors), errors
