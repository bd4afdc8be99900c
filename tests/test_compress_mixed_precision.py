"""Applying a mixed-precision decision, and size accounting vs an independent count."""

from __future__ import annotations

import pytest
import torch

from core.compress.mixed_precision import apply_decision, decision_size_bits
from core.compress.quantize import fake_quantize
from core.errors import InvalidInputError
from core.evaluate import size_bits as evaluate_size_bits
from core.formulations.base import Decision
from core.models import load_model
from core.sensitivity import decision_units


@pytest.fixture(scope="module")
def model():
    return load_model("digits-cnn")


def _independent_size(model, assignment):
    """Count bits from the modules directly: per layer, rows -> bits per weight."""
    total = 0
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if not own:
            continue
        if name not in assignment:
            total += 32 * sum(p.numel() for p in own)
            continue
        rows = module.weight.shape[0]
        per_row = module.weight[0].numel()
        bits = assignment[name]  # list: bits per output row (0 = pruned)
        assert len(bits) == rows
        for b in bits:
            if b:
                scale = 32 if b < 32 else 0  # a quantized row stores its fp32 scale
                total += b * per_row + (32 if module.bias is not None else 0) + scale
    return total


def test_apply_prune_quantize_keep(model):
    out = apply_decision(model, {"conv1": "prune", "conv2": 4, "fc": "keep"})
    assert out is not model and model.conv1.weight.abs().sum() > 0  # original untouched
    assert torch.count_nonzero(out.conv1.weight) == 0 and torch.count_nonzero(out.conv1.bias) == 0
    assert torch.equal(out.conv2.weight, fake_quantize(model.conv2.weight.detach(), 4))
    assert torch.equal(out.conv2.bias, model.conv2.bias)
    assert torch.equal(out.fc.weight, model.fc.weight)
    levels = [torch.unique(row).numel() for row in out.conv2.weight.reshape(32, -1)]
    assert max(levels) <= 15  # 4 bits symmetric: at most 2*7+1 levels per channel
    assert not out.training


def test_apply_fine_grained_touches_only_the_group(model):
    out = apply_decision(model, {"conv2[g2/4]": "prune", "fc[g1/2]": 2})
    assert torch.count_nonzero(out.conv2.weight[8:16]) == 0 and torch.count_nonzero(out.conv2.bias[8:16]) == 0
    assert torch.equal(out.conv2.weight[:8], model.conv2.weight[:8])
    assert torch.equal(out.conv2.weight[16:], model.conv2.weight[16:])
    assert torch.equal(out.fc.weight[:5], fake_quantize(model.fc.weight[:5].detach(), 2))
    assert torch.equal(out.fc.weight[5:], model.fc.weight[5:])


def test_apply_filter_masks_from_a_decision(model):
    mask = [i % 4 == 0 for i in range(16)]
    decision = Decision({"conv1": 8}, True, details={"filter_masks": {"conv1": mask}})
    out = apply_decision(model, decision)
    zero_rows = [i for i in range(16) if torch.count_nonzero(out.conv1.weight[i]) == 0]
    assert zero_rows == [i for i, m in enumerate(mask) if m]
    assert decision_size_bits(model, decision) == _independent_size(
        model, {"conv1": [0 if m else 8 for m in mask]}
    )


def test_apply_refuses_bad_decisions(model):
    with pytest.raises(InvalidInputError, match="cannot be pruned"):
        apply_decision(model, {"fc": "prune"})
    with pytest.raises(InvalidInputError, match="not a Conv2d"):
        apply_decision(model, {"conv9": 4})
    with pytest.raises(InvalidInputError):
        apply_decision(model, {"conv1": 12})
    with pytest.raises(InvalidInputError, match="twice"):
        decision_size_bits(model, {"conv2": 4, "conv2[g1/2]": 2})


@pytest.mark.parametrize(
    "decision, rows",
    [
        ({}, {}),
        ({"conv1": "prune", "conv2": 4, "fc": "keep"}, {"conv1": [0] * 16, "conv2": [4] * 32, "fc": [32] * 10}),
        ({"conv1": 2, "conv2": 8, "fc": 1}, {"conv1": [2] * 16, "conv2": [8] * 32, "fc": [1] * 10}),
        (
            {"conv2[g1/2]": "prune", "conv2[g2/2]": 2, "fc[g3/4]": 4},
            {"conv2": [0] * 16 + [2] * 16, "fc": [32] * 5 + [4] * 2 + [32] * 3},
        ),
    ],
)
def test_size_accounting_matches_independent_count(model, decision, rows):
    assert decision_size_bits(model, decision) == _independent_size(model, rows)
    if all("[" not in k for k in decision):
        assert decision_size_bits(model, decision) == evaluate_size_bits(model, decision)


def test_size_with_batchnorm_counts_non_unit_parameters():
    m = load_model("resnet18")
    bn = sum(p.numel() for n, mod in m.named_modules() if isinstance(mod, torch.nn.BatchNorm2d)
             for p in mod.parameters(recurse=False))
    units = decision_units(m)
    all_prunable = {u.name: "prune" for u in units if u.safe_to_prune}
    rest = sum(u.params for u in units if not u.safe_to_prune)
    assert decision_size_bits(m, all_prunable) == 32 * (bn + rest)
    assert decision_size_bits(m, all_prunable) == evaluate_size_bits(m, all_prunable)


def test_decision_units_and_costs(model):
    units = decision_units(model, groups=3)
    assert [u.name for u in units][:3] == ["conv1[g1/3]", "conv1[g2/3]", "conv1[g3/3]"]
    assert [u.out_channels for u in units[:3]] == [6, 5, 5]
    assert sum(u.params for u in units) == sum(p.numel() for p in model.parameters())
    u = units[0]
    assert u.cost_bits("prune") == 0 and u.kept_params("prune") == 0
    assert u.cost_bits(4) == 4 * 6 * 9 + 32 * 6 + 32 * 6 and u.cost_bits("keep") == 32 * u.params  # + scales
    assert not units[-1].safe_to_prune and units[-1].allowed(("prune", 4)) == (4,)
