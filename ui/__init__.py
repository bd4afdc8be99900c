"""Streamlit glue shared by the pages: session state, caching, error display.

Everything here is about *showing* things; the engine lives in ``core``.
"""
