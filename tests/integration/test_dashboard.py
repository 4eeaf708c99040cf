"""The dashboard (/ui) and the offline API docs (/docs, /redoc) in a real headless Chromium.

Debian's ``/usr/bin/chromium`` driven by Selenium through ``/usr/bin/chromedriver`` (both paths
given, ``SE_OFFLINE`` set: Selenium Manager downloads nothing), headless, ``--no-sandbox`` (CI
runs as root), with every host name unresolvable (``--host-resolver-rules``), as on a machine
without internet: what the pages need must come from the shim. Missing browser or driver: the
tests skip saying so, and fail instead under ``CI`` (``make system-deps`` installs both).

The page loads, lists the workers, shows a task submitted during the test and changes its row
in place as it runs and ends (a marker set in ``window`` before the task was submitted is still
there: no reload), opens a failed task's traceback and what it printed on click, and loads
nothing from another origin; /docs renders Swagger UI and /redoc renders ReDoc the same way.
With API keys on, the page asks for a key, keeps it in sessionStorage and sends it as a header,
never in a URL. A screenshot of the page goes to the test's tmp folder
(``FAAS_DASHBOARD_SCREENSHOT`` names another path, as docs/dashboard.png was made).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.launcher import Platform
from tests.integration.conftest import PlatformFactory
from tests.support import RestClient, serialize

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 60.0  # generous: the machine is shared


def _need_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (the dev extra)")
    if missing:
        reason = (
            f"{', '.join(missing)} missing: `make system-deps` installs Debian's chromium and "
            "chromium-driver, `make install` selenium"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI has a browser: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module's tests."""
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        # No internet: every host name but the shim's address fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not download anything
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


def _until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Polls ``condition`` until it is truthy; fails naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def _js(browser: Any, script: str, *args: Any) -> Any:
    return browser.execute_script(script, *args)


def _state(browser: Any) -> str:
    return str(_js(browser, "return document.getElementById('conn').dataset.state"))


def _snapshots(browser: Any) -> int:
    return int(_js(browser, "return window.faasDashboard ? window.faasDashboard.snapshots : 0"))


def _task_status(browser: Any, task_id: str) -> str | None:
    return _js(  # type: ignore[no-any-return]
        browser,
        "const r = document.querySelector(`#tasks-body tr[data-task-id='${arguments[0]}']`);"
        "return r ? r.dataset.status : null;",
        task_id,
    )


def _resources_off_origin(browser: Any, origin: str) -> list[str]:
    names = _js(
        browser,
        "return performance.getEntriesByType('navigation').concat("
        "performance.getEntriesByType('resource')).map(e => e.name);",
    )
    assert names, "the browser recorded no request at all"
    return [name for name in names if not name.startswith(origin + "/")]


def _open_dashboard(browser: Any, platform: Platform) -> None:
    browser.get(platform.rest_url + "/ui")
    _until(lambda: _state(browser) == "live", "the dashboard's event stream")


def _save_screenshot(browser: Any, tmp_path: Path) -> Path:
    path = tmp_path / "dashboard.png"
    browser.set_window_size(1400, 1500)  # the whole page, functions included
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    wanted = os.environ.get("FAAS_DASHBOARD_SCREENSHOT")
    if wanted:
        shutil.copyfile(path, wanted)
    return path


def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def divide(a: int, b: int) -> float:
    print(f"dividing {a} by {b}")
    return a / b


def test_dashboard_lists_workers_and_updates_without_a_reload(
    browser: Any, shared_platform: Platform, rest: RestClient
) -> None:
    _open_dashboard(browser, shared_platform)
    workers = rest.http.get("/workers").json()["workers"]
    assert workers
    shown = _until(
        lambda: _js(
            browser,
            "return Array.from(document.querySelectorAll('#workers-body tr[data-worker-id]'))"
            ".map(r => r.dataset.workerId);",
        ),
        "the workers' rows",
    )
    assert sorted(shown) == sorted(w["worker_id"] for w in workers)
    capacity = sum(w["capacity"] for w in workers)
    assert browser.find_element("id", "load").text.endswith(f"/ {capacity}")
    marker = uuid.uuid4().hex
    _js(browser, "window.faasMarker = arguments[0];", marker)
    seen = _snapshots(browser)
    _until(lambda: _snapshots(browser) >= seen + 3, "three more snapshots")
    assert _js(browser, "return window.faasMarker;") == marker  # same document: no reload
    assert browser.find_element("id", "queue-depth").text.isdigit()


def test_dashboard_shows_a_task_submitted_during_the_test_change_in_place(
    browser: Any, shared_platform: Platform, rest: RestClient, tmp_path: Path
) -> None:
    _open_dashboard(browser, shared_platform)
    marker = uuid.uuid4().hex
    _js(browser, "window.faasMarker = arguments[0];", marker)
    slow = rest.register(nap, name="nap")
    task_id = rest.execute(slow, 3.0)
    # It appears (QUEUED or RUNNING), and its row is tagged so that we know it is the same one.
    _until(lambda: _task_status(browser, task_id) in ("QUEUED", "RUNNING"), "the task's row")
    _js(
        browser,
        "document.querySelector(`#tasks-body tr[data-task-id='${arguments[0]}']`).faasSeen = true;",
        task_id,
    )
    _until(lambda: _task_status(browser, task_id) == "COMPLETED", "the task to complete")
    assert _js(
        browser,
        "return document.querySelector(`#tasks-body tr[data-task-id='${arguments[0]}']`)"
        ".faasSeen === true;",
        task_id,
    ), "the row was replaced instead of changed in place"
    assert _js(browser, "return window.faasMarker;") == marker  # no reload
    # Its function is listed with its counts, and the chart has counted it.
    _until(
        lambda: _js(
            browser,
            "const r = document.querySelector("
            "`#functions-body tr[data-function-id='${arguments[0]}']`);"
            "return r && r.cells[3].textContent === '1';",
            slow,
        ),
        "the function's completed count",
    )
    _until(
        lambda: _js(browser, "return document.querySelectorAll('#chart rect.bar').length > 0"),
        "a bar in the throughput chart",
    )
    # A batch: the chart and the list fill, the queue drains.
    batch = rest.http.post(
        "/execute_batch",
        json={"function_id": slow, "payloads": [serialize(((0.2,), {}))] * 12},
    )
    assert batch.status_code == 200, batch.text
    last = batch.json()["task_ids"][-1]
    _until(lambda: _task_status(browser, last) == "COMPLETED", "the batch's last task")
    # A failed task's traceback opens on click.
    failing = rest.register(divide, name="divide")
    failed_id = rest.execute(failing, 1, 0)
    _until(lambda: _task_status(browser, failed_id) == "FAILED", "the failed task's row")
    browser.find_element("css selector", f"#tasks-body tr[data-task-id='{failed_id}']").click()
    traceback = _until(
        lambda: _js(
            browser,
            "const t = document.getElementById('detail-traceback');"
            "return t.hidden ? '' : t.textContent;",
        ),
        "the traceback",
    )
    assert "ZeroDivisionError" in traceback
    printed = _until(
        lambda: _js(
            browser,
            "const o = document.getElementById('detail-output');"
            "return o.hidden ? '' : o.textContent;",
        ),
        "what the failed task printed",
    )
    assert "dividing 1 by 0" in printed
    assert "RAISED" in browser.find_element("id", "detail-summary").text
    assert _resources_off_origin(browser, shared_platform.rest_url) == []
    _js(browser, "document.getElementById('detail').hidden = true;")
    _save_screenshot(browser, tmp_path)


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/ui", "return document.getElementById('conn').dataset.state === 'live'"),
        # Swagger UI drew the API: its info block and an operation of ours.
        (
            "/docs",
            "return !!document.querySelector('.swagger-ui .info .title') && "
            "!!document.querySelector('.swagger-ui .opblock');",
        ),
        # ReDoc drew the API: its menu and the API's title.
        (
            "/redoc",
            "return !!document.querySelector('.redoc-wrap') && "
            "document.body.innerText.includes('MPCSFaaS REST API');",
        ),
    ],
)
def test_pages_render_with_everything_from_the_shim(
    browser: Any, shared_platform: Platform, path: str, rendered: str
) -> None:
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(shared_platform.rest_url + path)
    _until(lambda: _js(browser, rendered), f"{path} to render")
    assert _resources_off_origin(browser, shared_platform.rest_url) == []
    errors = [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon" not in entry["message"]
    ]
    assert errors == [], errors


def test_dashboard_with_api_keys_asks_for_a_key_and_sends_it_as_a_header(
    browser: Any, make_platform: PlatformFactory
) -> None:
    platform = make_platform(api_keys=True)
    assert platform.api_keys is not None
    key = platform.api_keys.issue("dash", "client", tenant="team-d")
    assert httpx.get(platform.rest_url + "/ui/events", timeout=30).status_code == 401
    browser.get(platform.rest_url + "/ui")
    _js(browser, "sessionStorage.clear();")
    browser.refresh()
    _until(lambda: _state(browser) == "key", "the page to ask for a key")
    form = browser.find_element("id", "key-form")
    assert form.is_displayed()
    # A wrong key is refused and asked for again.
    browser.find_element("id", "key-input").send_keys("faas_nobody." + "x" * 43)
    browser.find_element("css selector", "#key-form button").click()
    _until(
        lambda: _state(browser) == "key" and browser.find_element("id", "key-error").text,
        "the wrong key's refusal",
    )
    browser.find_element("id", "key-input").send_keys(key)
    browser.find_element("css selector", "#key-form button").click()
    _until(lambda: _state(browser) == "live", "the stream with the right key")
    _until(
        lambda: _js(
            browser, "return document.querySelectorAll('#workers-body tr[data-worker-id]').length"
        ),
        "the workers' rows",
    )
    assert _js(browser, "return sessionStorage.getItem('faas-api-key');") == key
    assert not form.is_displayed()
    names = _js(browser, "return performance.getEntriesByType('resource').map(e => e.name);")
    assert not [n for n in names if key in n], "the key went into a URL"
    _js(browser, "sessionStorage.clear();")
