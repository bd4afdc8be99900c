"""Sensitivity on digits-cnn: ordering of options, neighbour terms, cache, progress."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.compress.mixed_precision import apply_decision
from core.data import digits_split, random_data
from core.errors import InvalidInputError
from core.models import load_model
from core.sensitivity import cache_clear, cache_info, measure_sensitivity, parse_options


@pytest.fixture(scope="module")
def digits():
    return load_model("digits-cnn"), digits_split().val


def _loss(model, data):
    with torch.no_grad():
        return F.cross_entropy(model(data.images), data.labels).item()


def test_parse_options():
    assert parse_options("keep, 8,prune,2,4,4") == ("prune", 2, 4, 8, "keep")
    assert parse_options(["4b", 2, "fp32"]) == (2, 4, "keep")
    for bad in ("", "9", "0", "prune,half", [True]):
        with pytest.raises(InvalidInputError):
            parse_options(bad)


def test_measured_distortion_orders_options(digits):
    model, val = digits
    s = measure_sensitivity(model, val, options="prune,2,8,keep", cache=False)
    assert [u.name for u in s.units] == ["conv1", "conv2", "fc"]
    assert "prune" not in s.distortion["fc"] and s.unit_options("fc") == (2, 8, "keep")
    for row in s.distortion.values():
        assert row["keep"] == 0.0
        assert row["2"] > row["8"]
        if "prune" in row:
            assert row["prune"] > row["2"]
    assert s.baseline_loss == pytest.approx(_loss(model, val), rel=1e-5)


def test_measured_distortion_equals_full_forward_of_compressed_model(digits):
    """The partial (reuse-the-baseline) forward gives the same loss as a full one."""
    model, val = digits
    s = measure_sensitivity(model, val, options="prune,2,keep", groups=2, cache=False)
    base = _loss(model, val)
    for unit in ("conv1[g1/2]", "conv2[g2/2]", "fc[g2/2]"):
        for option in s.unit_options(unit):
            expected = _loss(apply_decision(model, {unit: option}), val) - base
            assert s.distortion[unit][str(option)] == pytest.approx(expected, abs=1e-5)


def test_pairwise_terms_are_joint_minus_individual(digits):
    model, val = digits
    s = measure_sensitivity(model, val, options="prune,2,keep", pairwise=True, cache=False)
    assert set(s.pairwise) == {
        ("conv1", a, "conv2", b) for a in ("prune", "2") for b in ("prune", "2")
    } | {("conv2", a, "fc", "2") for a in ("prune", "2")}
    joint = _loss(apply_decision(model, {"conv1": 2, "conv2": 2}), val) - s.baseline_loss
    expected = joint - s.distortion["conv1"]["2"] - s.distortion["conv2"]["2"]
    assert s.pairwise[("conv1", "2", "conv2", "2")] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("method", ["hessian", "magnitude"])
def test_proxies_order_options(digits, method):
    model, val = digits
    s = measure_sensitivity(model, val.subset(64), method=method, hessian_samples=16, cache=False)
    for row in s.distortion.values():
        assert row["keep"] == 0.0 and row["2"] > row["4"] > row["8"] > 0
        if "prune" in row:
            assert row["prune"] > row["8"]
    if method == "magnitude":
        w = model.conv1.weight.detach()
        assert s.distortion["conv1"]["prune"] == pytest.approx(float((w**2).sum() + (model.conv1.bias.detach() ** 2).sum()))


def test_cache_hit_in_memory_and_on_disk(digits, tmp_path):
    model, val = digits
    cache_clear()
    calls = []
    first = measure_sensitivity(model, val, options="2,keep", cache_dir=tmp_path,
                                progress=lambda d, t, m: calls.append((d, t)))
    assert not first.cached and calls[-1][0] == calls[-1][1] == 3
    second = measure_sensitivity(model, val, options="2,keep", cache_dir=tmp_path)
    assert second.cached and second.distortion == first.distortion
    assert cache_info()["hits"] == 1 and cache_info()["misses"] == 1
    cache_clear()  # memory gone, disk remains
    third = measure_sensitivity(model, val, options="2,keep", cache_dir=tmp_path)
    assert third.cached and third.distortion == first.distortion and third.units == first.units
    # a different key misses
    assert not measure_sensitivity(model, val, options="4,keep", cache_dir=tmp_path).cached


def test_invalid_parameters(digits):
    model, val = digits
    with pytest.raises(InvalidInputError, match="method"):
        measure_sensitivity(model, val, method="taylor")
    with pytest.raises(InvalidInputError, match="Pairwise"):
        measure_sensitivity(model, val, method="magnitude", pairwise=True)
    with pytest.raises(InvalidInputError, match="groups"):
        measure_sensitivity(model, val, groups=0)
    with pytest.raises(InvalidInputError, match="cannot be pruned"):
        measure_sensitivity(model, val, options="prune")


def test_residual_model_traced_partial_forward_matches():
    """ResNet-style graphs with in-place ops: replay must equal a full forward."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    model.layer2 = model.layer3 = model.layer4 = torch.nn.Identity()
    model.fc = torch.nn.Linear(64, 10)
    data = random_data((3, 16, 16), n=8, seed=0)
    s = measure_sensitivity(model, data, options="2,keep", cache=False)
    base = _loss(model, data)
    for unit in ("conv1", "layer1.0.conv2", "layer1.1.conv1"):
        expected = _loss(apply_decision(model, {unit: 2}), data) - base
        assert s.distortion[unit]["2"] == pytest.approx(expected, abs=1e-5)
