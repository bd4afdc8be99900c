"""End-to-end tests: headless Chromium against `streamlit run app.py` (see conftest.py)."""
