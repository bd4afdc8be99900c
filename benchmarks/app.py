"""App speed in a real browser: cold start, and click-to-result for the default Solve.

    python -m benchmarks.app [--repeats 5] [--quick]

Cold start: from launching ``streamlit run app.py`` to the health endpoint
answering, and to the Home page drawn in headless Chromium (first script run,
imports included). Click-to-result: on the default path (digits-cnn, the
default QUBO, sampler sa, 100 reads), the time from clicking **Run** on the
Solve page to the results being drawn (Streamlit idle again), with warm
caches: one unmeasured run first, then ``--repeats`` measured runs. The
clock stops when the new run's "Done: run N" status, the figures and the
end of the script run (no running indicator) are all on the page.
Targets (issue 4): click-to-result under 2 s, cold start under 10 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO_ROOT,
    RUNNING,
    VIEWPORT,
    _free_port,
    _health_ok,
    _stop,
    click_and_wait,
    goto_page,
    select_option,
    wait_for_idle,
)

TARGET_CLICK_S = 2.0
TARGET_COLD_S = 10.0


def start_server(tmp: Path) -> tuple[subprocess.Popen, str, float]:
    port = _free_port()
    env = {**os.environ, "QCL_DB_URL": f"sqlite:///{tmp / 'runs.sqlite'}", "PYTHONUNBUFFERED": "1"}
    env.pop("DWAVE_API_TOKEN", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    while not _health_ok(f"{url}/_stcore/health"):
        if proc.poll() is not None or time.perf_counter() - t0 > 120:
            _stop(proc)
            raise SystemExit("streamlit did not start")
        time.sleep(0.05)
    return proc, url, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repeats")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmpdir, sync_playwright() as pw:
        tmp = Path(tmpdir)
        t_launch = time.perf_counter()
        proc, url, health_s = start_server(tmp)
        try:
            context = pw.chromium.launch_persistent_context(
                user_data_dir=str(tmp / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport=VIEWPORT)
            context.set_default_timeout(60_000)
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(url)
            page.get_by_role("heading", name="QUBO Compression Lab").wait_for()
            wait_for_idle(page, settle_s=0.3)
            cold_s = time.perf_counter() - t_launch

            t0 = time.perf_counter()
            goto_page(page, "Model")
            click_and_wait(page, page.get_by_role("button", name="Load model"), timeout_s=120)
            page.get_by_text("Compressible units").wait_for()
            first_model_s = time.perf_counter() - t0
            goto_page(page, "Formulate")
            goto_page(page, "Solve")
            select_option(page, "Sampler", "sa")
            run_button = page.get_by_role("button", name="Run", exact=True)
            click_and_wait(page, run_button, timeout_s=120)  # warm-up: caches, imports, first store write
            page.get_by_text("Best energy").first.wait_for()
            times = []
            for run_id in range(2, repeats + 2):  # the warm-up was run 1 in a fresh history
                t0 = time.perf_counter()
                run_button.click()
                page.get_by_text(f"Done: run {run_id}").wait_for()
                page.locator(".js-plotly-plot .main-svg").first.wait_for()
                page.locator(RUNNING).wait_for(state="detached")
                times.append(time.perf_counter() - t0)
                wait_for_idle(page)
            context.close()
        finally:
            _stop(proc)

    median = statistics.median(times)
    print(f"command: python -m benchmarks.app --repeats {repeats}")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}\n")
    print("| measure | value | target | met |")
    print("|---|---:|---:|---|")
    print(f"| cold start: launch to /_stcore/health ok | {health_s:.2f} s | | |")
    print(f"| cold start: launch to Home drawn in Chromium | {cold_s:.2f} s | {TARGET_COLD_S:.0f} s | "
          f"{'yes' if cold_s < TARGET_COLD_S else 'no'} |")
    print(f"| first model load on a cold server (torch import, digits-cnn, accuracy and latency; "
          f"includes a 0.6 s idle check) | {first_model_s:.2f} s | | |")
    print(f"| click Run to results drawn (sa, 100 reads, warm; median of {repeats}) | {median:.2f} s | "
          f"{TARGET_CLICK_S:.0f} s | {'yes' if median < TARGET_CLICK_S else 'no'} |")
    print(f"| click-to-result runs | {', '.join(f'{t:.2f}' for t in times)} s | | |")
    return 0 if (cold_s < TARGET_COLD_S and median < TARGET_CLICK_S) else 1


if __name__ == "__main__":
    raise SystemExit(main())
