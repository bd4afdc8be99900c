"""Shared test set-up: one torch thread (stable, fast on small CI machines),
derandomized property tests without deadlines, and the built-in digits-cnn workspace, loaded once per session."""

from __future__ import annotations

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(1)

# Property tests must be reproducible run to run, and their first example may pay for a lazy import
# (streamlit, torch modules) on a shared machine: a fixed example sequence, no wall-clock deadline.
settings.register_profile("suite", derandomize=True, deadline=None, database=None)
settings.load_profile("suite")


@pytest.fixture(scope="session")
def digits_cnn_workspace():
    """``open_workspace("digits-cnn")``; treat as read-only (deepcopy the model before changing it)."""
    from core.workspace import open_workspace

    return open_workspace("digits-cnn")
