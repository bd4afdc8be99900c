"""benchmarks.adaround.logit_drift: a gain is error before the gain is removed and none after."""

import pytest
import torch

from benchmarks.adaround import logit_drift


def test_a_pure_gain_is_removed_and_a_flipped_prediction_is_not():
    torch.manual_seed(0)
    reference = torch.nn.Linear(6, 4)
    doubled = torch.nn.Linear(6, 4)
    with torch.no_grad():
        doubled.weight.copy_(2 * reference.weight)
        doubled.bias.copy_(2 * reference.bias)
    images = torch.randn(50, 6)
    d = logit_drift(doubled, reference, images)
    assert d["relative_error"] == pytest.approx(1.0)  # (2y - y)^2 / y^2
    assert d["gain_free_error"] == pytest.approx(0.0, abs=1e-12)
    assert d["mean_gain"] == pytest.approx(0.5) and d["agree"] == 1.0

    negated = torch.nn.Linear(6, 4)
    with torch.no_grad():
        negated.weight.copy_(-reference.weight)
        negated.bias.copy_(-reference.bias)
    d = logit_drift(negated, reference, images)
    # a negative gain would flip every prediction: it is not allowed, so the error stays
    assert d["mean_gain"] == 0.0 and d["gain_free_error"] == pytest.approx(1.0) and d["agree"] < 0.5
