"""Playwright end-to-end harness: a real ``streamlit run app.py`` driven by headless Chromium.

Fixtures
--------
``streamlit_server`` (session)
    Starts ``python -m streamlit run app.py`` from the repository root on a free
    loopback port, with ``QCL_DB_URL`` pointing at a throw-away SQLite file (test
    runs never touch the user's run history) and without ``DWAVE_API_TOKEN``.
    Waits for ``/_stcore/health`` to answer ``ok`` and yields the base URL
    (``http://127.0.0.1:PORT``). Fails loudly, with the server's log tail, if the
    server exits or does not become healthy in time. The server's process group is
    terminated at the end of the session; its log is copied to
    ``test-results/e2e/streamlit-server.log``.
``chromium_page`` (function)
    A Playwright ``Page`` in Debian's headless Chromium (``/usr/bin/chromium``,
    never Playwright's own browser download) with a fresh temporary profile and a
    1400x1000 viewport, from the ``playwright`` package itself (the pytest-playwright
    plugin is not used: its autouse fixture wiped ./test-results at the start of every
    pytest session, whoever started it). When the test fails (or xfails) a screenshot is
    saved as ``test-results/e2e/FAILED-<test name>.png``.
``app_page`` (function)
    ``chromium_page`` opened on the app's Home page, with the first script run finished.

Helpers (import with ``from .conftest import ...``)
---------------------------------------------------
``wait_for_idle(page)``        until Streamlit has no script run in progress (and no stale elements).
``click_and_wait(page, loc)``  click a locator, then wait for the rerun it triggers to finish.
``goto_page(page, title)``     open a page through the sidebar navigation and wait for its run.
``select_option(page, label, option)``  choose an option in the st.selectbox with that label.
``assert_no_exception(page)``  fail if a Streamlit exception/traceback box is on the page.
``shot(page, name)``           save ``test-results/e2e/<name>.png`` (whole page) and return its path
                               (``$QCL_E2E_OUTPUT_DIR/<name>.png`` when that variable is set).

Chromium missing: the tests are skipped with a reason, except under CI (env ``CI``
set), where they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# QCL_E2E_OUTPUT_DIR puts the screenshots and the server log somewhere other than ./test-results/e2e.
OUTPUT_DIR = Path(os.environ.get("QCL_E2E_OUTPUT_DIR") or REPO_ROOT / "test-results" / "e2e").resolve()
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1000}
HEALTH_TIMEOUT_S = 90.0
DEFAULT_TIMEOUT_MS = 30_000  # Playwright's per-action / per-expectation default

# the app root's script state is there whatever the toolbar shows (toolbarMode "minimal" can hide the icon)
RUNNING = '[data-testid="stApp"][data-test-script-state="running"], [data-testid="stStatusWidgetRunningIcon"]'
STALE = '[data-stale="true"]'
EXCEPTION = '[data-testid="stException"]'
SIDEBAR_NAV = '[data-testid="stSidebarNav"]'


# --------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


def _health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
            return resp.status == 200 and resp.read().decode().strip() == "ok"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def _start_server(port: int, env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, list[str]]:
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        # Others edit the pages while tests run: no file watcher, no "source changed" prompts.
        "--server.fileWatcherType", "none",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return proc, cmd


def _serving(proc: subprocess.Popen, port: int, log_path: Path) -> bool:
    """Our server answers: the health check passes, the process is alive and its log names our port
    (another process that took the port in the meantime would pass the health check alone)."""
    return (_health_ok(f"http://127.0.0.1:{port}/_stcore/health") and proc.poll() is None
            and f"127.0.0.1:{port}" in _tail(log_path, 200))


@pytest.fixture(scope="session")
def streamlit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("streamlit-server")
    log_path = tmp / "streamlit.log"

    env = os.environ.copy()
    env.pop("DWAVE_API_TOKEN", None)
    env["QCL_DB_URL"] = f"sqlite:///{tmp / 'runs.sqlite'}"
    env["XDG_DATA_HOME"] = str(tmp / "xdg-data")
    env["PYTHONUNBUFFERED"] = "1"
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    env["OMP_NUM_THREADS"] = "1"  # as the rest of the suite: stable timings on a shared 2-core machine

    # The free port is released before streamlit binds it; if something else takes it in between, try another.
    for attempt in range(3):
        port = _free_port()
        proc, cmd = _start_server(port, env, log_path)
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not _serving(proc, port, log_path):
            code = proc.poll()
            if code is not None:
                if f"Port {port} is not available" in _tail(log_path) and attempt < 2:
                    break
                pytest.fail(
                    f"streamlit server exited with code {code} before becoming healthy.\n"
                    f"command: {' '.join(cmd)}\n--- server log tail ---\n{_tail(log_path)}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                _stop(proc)
                pytest.fail(
                    f"streamlit server did not answer 'ok' on port {port} within {HEALTH_TIMEOUT_S:.0f} s.\n"
                    f"command: {' '.join(cmd)}\n--- server log tail ---\n{_tail(log_path)}",
                    pytrace=False,
                )
            time.sleep(0.25)
        else:
            break
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(log_path, OUTPUT_DIR / "streamlit-server.log")
        except OSError:
            pass


# --------------------------------------------------------------------------- browser


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"e2e_rep_{report.when}", report)
    return report


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run the e2e tests"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this is an error, not a skip)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def e2e_playwright():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def chromium_page(e2e_playwright, tmp_path: Path, request: pytest.FixtureRequest):
    context = e2e_playwright.chromium.launch_persistent_context(
        user_data_dir=str(tmp_path / "chromium-profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport=VIEWPORT,
    )
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.pages[0] if context.pages else context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.e2e_page_errors = page_errors  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        rep = getattr(request.node, "e2e_rep_call", None)
        if rep is not None and (rep.failed or (rep.skipped and hasattr(rep, "wasxfail"))):
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            try:
                shot(page, f"FAILED-{name}")
            except Exception as exc:  # noqa: BLE001 - best effort, never mask the real failure
                print(f"could not save failure screenshot: {exc}")
            if page_errors:
                print("browser page errors:\n" + "\n".join(page_errors))
        context.close()


@pytest.fixture
def app_page(chromium_page, streamlit_server: str):
    chromium_page.goto(streamlit_server, wait_until="domcontentloaded")
    chromium_page.locator('[data-testid="stApp"]').wait_for()
    chromium_page.locator(SIDEBAR_NAV).wait_for()
    wait_for_idle(chromium_page, timeout_s=60)
    return chromium_page


# --------------------------------------------------------------------------- helpers


def wait_for_idle(page, timeout_s: float = 60.0, settle_s: float = 0.6) -> None:
    """Wait until no script run is in progress: no running icon and no stale elements for ``settle_s``."""
    deadline = time.monotonic() + timeout_s
    quiet_since: float | None = None
    while True:
        busy = page.locator(RUNNING).count() > 0 or page.locator(STALE).count() > 0
        now = time.monotonic()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= settle_s:
            return
        if now > deadline:
            raise AssertionError(f"Streamlit was still running after {timeout_s:.0f} s")
        page.wait_for_timeout(100)


def click_and_wait(page, locator, timeout_s: float = 60.0) -> None:
    """Click ``locator`` and wait for the rerun it starts to finish."""
    locator.click()
    try:  # the running icon may show up a little late, or never for a fast run
        page.locator(RUNNING).first.wait_for(state="attached", timeout=1500)
    except Exception:  # noqa: BLE001 - playwright TimeoutError: the run was too quick to see
        pass
    wait_for_idle(page, timeout_s=timeout_s)


def goto_page(page, title: str, timeout_s: float = 60.0) -> None:
    """Open the page called ``title`` through the sidebar navigation (keeps the session state)."""
    link = page.locator(SIDEBAR_NAV).get_by_role("link", name=title, exact=True)
    click_and_wait(page, link, timeout_s=timeout_s)
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=timeout_s * 1000)
    wait_for_idle(page, timeout_s=timeout_s)


def select_option(page, label: str, option: str | re.Pattern[str], timeout_s: float = 60.0) -> None:
    """Pick ``option`` (exact text or regex) in the st.selectbox labelled ``label``."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text(label, exact=True)).first
    box.locator('[role="combobox"], input').first.click()
    if isinstance(option, str):
        choice = page.get_by_role("option", name=option, exact=True)
    else:
        choice = page.get_by_role("option", name=option)
    click_and_wait(page, choice.first, timeout_s=timeout_s)


def assert_no_exception(page) -> None:
    boxes = page.locator(EXCEPTION)
    if boxes.count():
        raise AssertionError("Streamlit exception on the page:\n" + boxes.first.inner_text()[:2000])


def shot(page, name: str, max_height: int = 4000) -> Path:
    """Save a screenshot of the whole page as ``test-results/e2e/<name>.png`` and return its path.

    Streamlit scrolls inside ``stMain``, not the document, so ``full_page`` alone would stop at the
    viewport: the viewport is stretched to the content's height (at most ``max_height``) for the shot.
    """
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUTPUT_DIR / f"{name}.png"
    viewport = page.viewport_size or VIEWPORT
    height = page.evaluate(
        "() => Math.max(...['[data-testid=\"stMain\"]', '[data-testid=\"stAppViewContainer\"]']"
        ".map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight), 0)"
    )
    tall = min(max(int(height), viewport["height"]), max_height)
    if tall > viewport["height"]:
        page.set_viewport_size({"width": viewport["width"], "height": tall})
        page.wait_for_timeout(400)  # let plotly and the grids lay out again
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        if tall > viewport["height"]:
            page.set_viewport_size(viewport)
    return path


__all__: list[str] = [
    "REPO_ROOT", "OUTPUT_DIR", "wait_for_idle", "click_and_wait", "goto_page", "select_option",
    "assert_no_exception", "shot",
]
