"""Headless Chromium walks the app as a user would (issue 2 harness, issue 4 default path)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import assert_no_exception, click_and_wait, goto_page, select_option, shot, wait_for_idle

pytestmark = pytest.mark.e2e

PERCENT = re.compile(r"^\s*\d{1,3}(\.\d+)?\s*%\s*$")
PLOTLY = ".js-plotly-plot"


def metric_value(page, label: str) -> str:
    """The displayed value of the st.metric whose label is exactly ``label``."""
    label_re = re.compile(rf"^\s*{re.escape(label)}\s*$")
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]').filter(has_text=label_re)
    ).first
    value = metric.locator('[data-testid="stMetricValue"]')
    expect(value).to_be_visible()
    return value.inner_text()


def load_default_model(page) -> str:
    goto_page(page, "Model")
    expect(page.get_by_text("No model loaded yet")).to_be_visible()
    click_and_wait(page, page.get_by_role("button", name="Load model"), timeout_s=90)
    expect(page.get_by_role("heading", name="digits-cnn")).to_be_visible()
    assert_no_exception(page)
    return metric_value(page, "Accuracy")


def test_home_then_model_shows_accuracy(app_page):
    page = app_page
    expect(page.get_by_role("heading", name="QUBO Compression Lab", level=1)).to_be_visible()
    assert_no_exception(page)
    shot(page, "home")

    accuracy = load_default_model(page)
    assert PERCENT.match(accuracy), f"Accuracy metric should be a percentage, got {accuracy!r}"
    assert float(accuracy.strip().rstrip("%")) >= 90.0, f"digits-cnn accuracy unexpectedly low: {accuracy}"
    expect(page.get_by_text("Compressible units")).to_be_visible()
    shot(page, "model")


def test_sidebar_summary_follows_loaded_model(app_page):
    page = app_page
    load_default_model(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_text(re.compile(r"Model digits-cnn on digits"))).to_be_visible()
    expect(sidebar.get_by_text("No model selected yet.")).to_have_count(0)


def test_direct_link_and_refresh_keep_the_app_around_the_page(chromium_page, streamlit_server):
    """A bookmarked or refreshed page URL still runs app.py: its navigation, wide layout and sidebar."""
    page = chromium_page
    for path, title in (("compare", "Compare"), ("solve", "Solve")):
        page.goto(f"{streamlit_server.rstrip('/')}/{path}", wait_until="domcontentloaded")
        page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
        wait_for_idle(page)
        nav = page.locator('[data-testid="stSidebarNav"]')
        expect(nav.get_by_role("link", name="Home", exact=True)).to_be_visible()
        expect(nav.get_by_role("link", name="app", exact=True)).to_have_count(0)
        expect(page.locator('[data-testid="stSidebar"]').get_by_text("No model selected yet.")).to_be_visible()
        assert_no_exception(page)


def select_dataframe_rows(page, table, rows: list[int]) -> None:
    """Tick rows (0-based) in a multi-row-selectable st.dataframe (glide grid: a canvas, so click by position)."""
    table.scroll_into_view_if_needed()
    box = table.bounding_box()
    assert box is not None, "the runs table is not on screen"
    row_h = 35  # Streamlit's default row height; the header row is the same height
    for r in rows:
        page.mouse.click(box["x"] + 18, box["y"] + row_h * (r + 1) + row_h / 2)
        wait_for_idle(page)


def solve_once(page, sampler: str, seed: int) -> None:
    select_option(page, "Sampler", sampler)
    seed_box = page.get_by_label("Seed")
    seed_box.fill(str(seed))
    seed_box.press("Enter")
    wait_for_idle(page)
    click_and_wait(page, page.get_by_role("button", name="Run", exact=True), timeout_s=120)
    expect(page.get_by_text(re.compile(r"Done: run \d+"))).to_be_visible()
    expect(page.get_by_text("Best energy")).to_be_visible()
    assert_no_exception(page)


def test_default_path_formulate_embed_solve_compare(app_page):
    page = app_page
    load_default_model(page)

    goto_page(page, "Formulate", timeout_s=120)
    expect(page.locator(PLOTLY).first).to_be_visible(timeout=120_000)
    expect(page.get_by_text("Variables", exact=True)).to_be_visible()
    assert_no_exception(page)
    shot(page, "formulate")

    goto_page(page, "Embed")
    select_option(page, "Topology", re.compile(r"^Pegasus"))
    click_and_wait(page, page.get_by_role("button", name="Embed", exact=True), timeout_s=120)
    expect(page.get_by_text(re.compile(r"qubits")).first).to_be_visible()
    expect(page.locator(PLOTLY).first).to_be_visible()
    assert_no_exception(page)
    shot(page, "embed")

    goto_page(page, "Solve")
    solve_once(page, "sa", seed=1)
    expect(page.locator(PLOTLY).first).to_be_visible()
    shot(page, "solve")
    solve_once(page, "tabu", seed=2)
    shot(page, "solve-tabu")

    goto_page(page, "Compare")
    heading = page.get_by_role("heading", name=re.compile(r"^Runs \(\d+\)$"))
    expect(heading).to_be_visible()
    count = int(re.search(r"\d+", heading.inner_text()).group())
    assert count >= 2, f"expected at least 2 saved runs, the table says {count}"
    table = page.locator('[data-testid="stDataFrame"]').first
    select_dataframe_rows(page, table, [0, 1])
    # glide grid mirrors the canvas in an accessible table: both rows must now be selected
    expect(table.locator('[role="row"][aria-selected="true"]')).to_have_count(2)
    hist = page.locator('[data-testid="stPlotlyChart"]').first
    expect(hist).to_be_visible()
    # overlaid histogram: one legend entry per selected run, e.g. "#2 tabu" and "#1 sa"
    expect(hist.get_by_text(re.compile(r"#\d+ sa"))).to_be_visible()
    expect(hist.get_by_text(re.compile(r"#\d+ tabu"))).to_be_visible()
    assert_no_exception(page)
    shot(page, "compare")


@pytest.mark.parametrize("method", ["adaround", "filter-pruning"])
def test_other_methods_formulate_and_solve(app_page, method):
    """F3 and F2 in the browser: the subproblem heatmap, then a full run with its baselines."""
    page = app_page
    load_default_model(page)
    goto_page(page, "Formulate", timeout_s=120)
    select_option(page, "Method", method, timeout_s=120)
    expect(page.locator(PLOTLY).first).to_be_visible(timeout=120_000)
    assert_no_exception(page)
    shot(page, f"formulate-{method}")

    goto_page(page, "Solve")
    select_option(page, "Sampler", "sa")
    click_and_wait(page, page.get_by_role("button", name="Run", exact=True), timeout_s=180)
    # a whole-model run takes several seconds; the status box says when it is over
    expect(page.get_by_text(re.compile(r"Done: run \d+"))).to_be_visible(timeout=180_000)
    wait_for_idle(page, timeout_s=60)
    expect(page.get_by_text("Subproblems", exact=True)).to_be_visible()
    accuracy = metric_value(page, "Accuracy")
    assert PERCENT.match(accuracy), accuracy
    # the baselines' accuracies come with a paired test on the same examples
    expect(page.get_by_text(re.compile(r"Paired test on the same \d+ examples"))).to_be_visible()
    assert_no_exception(page)
    shot(page, f"solve-{method}")
