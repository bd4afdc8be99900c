"""Shared helpers for the streamlit.testing AppTest page tests."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def start_app(tmp_path: Path, monkeypatch, *, timeout: float = 120) -> AppTest:
    """The app on Home, with a throw-away run history, no D-Wave token and empty caches."""
    monkeypatch.setenv("QCL_DB_URL", f"sqlite:///{tmp_path / 'runs.sqlite'}")
    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    return at


def ok(at: AppTest) -> AppTest:
    """Fail on any exception shown in the page."""
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def load_digits_cnn(at: AppTest) -> AppTest:
    at.switch_page("app_pages/model.py").run()
    at.button(key="load_model").click().run()
    return ok(at)


def load_torchvision_on_random_data(at: AppTest, architecture: str) -> AppTest:
    """A torchvision architecture with random weights, evaluated on random data."""
    at.switch_page("app_pages/model.py").run()
    at.radio(key="model_source").set_value("torchvision").run()
    at.selectbox(key="tv_model").set_value(architecture).run()
    at.selectbox(key="data_choice").set_value("random").run()
    at.button(key="load_model").click().run()
    return at
