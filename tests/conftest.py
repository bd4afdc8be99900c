"""Shared test set-up: one torch thread (stable, fast on small CI machines)
and the built-in digits-cnn workspace, loaded once per session."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_cnn_workspace():
    """``open_workspace("digits-cnn")``; treat as read-only (deepcopy the model before changing it)."""
    from core.workspace import open_workspace

    return open_workspace("digits-cnn")
