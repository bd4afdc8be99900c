"""AdaRound's continuous relaxation, the classical baseline of the F3 rounding QUBO."""

from __future__ import annotations

import copy

import dimod
import numpy as np
import pytest
import torch
from toy_models import TwoLayer, random_calib

from core.compress.quantize import channel_scales, levels
from core.compress.relaxed_rounding import relaxed_rounding, relaxed_rounding_model
from core.compress.rounding import rounding_levels
from core.data import EvalData, digits_split
from core.errors import InvalidInputError
from core.formulations.adaround import _collect_grams, _rtn_assignment, layer_problem
from core.models import load_model


def _Net() -> TwoLayer:
    return TwoLayer(8, 6, 3, seed=3)


def _calib(n: int = 128) -> EvalData:
    return random_calib(n, (1, 2, 4), 3, seed=1)


def _problem(bits: int):
    model, calib = _Net(), _calib()
    gram = _collect_grams(model, ["a"], calib.images, 64)["a"]
    return model, calib, layer_problem(model.a, gram, bits, name="a")


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_the_relaxation_rounds_every_weight_and_cannot_beat_the_exact_optimum(bits):
    _model, calib, problem = _problem(bits)
    v = relaxed_rounding(problem, len(calib), iterations=3000)
    assert set(np.unique(v)) <= {0.0, 1.0} and (v[problem.step == 0] == 0).all()
    relaxed = problem.energies(v)
    for j in range(problem.out_channels):  # 8 free weights at most: the channel QUBO's exact optimum
        idx, linear, (r, c, quad), offset = problem.channel_qubo(j)
        bqm = dimod.BinaryQuadraticModel.from_numpy_vectors(linear, (r, c, quad), offset, dimod.BINARY)
        assert relaxed[j] >= dimod.ExactSolver().sample(bqm).first.energy - 1e-9


def _autograd_reference(problem, num_samples: int, iterations: int) -> np.ndarray:
    """The same method written with torch autograd and torch's Adam, to check the written-out gradient."""
    from core.compress import relaxed_rounding as rr

    step, resid = torch.from_numpy(problem.step), torch.from_numpy(problem.resid)
    free = step > 0
    start = torch.where(free, resid / torch.where(free, step, 1.0), torch.full_like(resid, 0.5)).clamp(0.01, 0.99)
    logits = torch.log((start - rr.GAMMA) / (rr.ZETA - start)).requires_grad_(True)
    optimiser = torch.optim.Adam([logits], lr=1e-3)
    warmup = int(rr.WARMUP * iterations)
    for it in range(1, iterations + 1):
        h = torch.clamp(torch.sigmoid(logits) * (rr.ZETA - rr.GAMMA) + rr.GAMMA, 0, 1)
        d = torch.where(free, step * h - resid, -resid)
        loss = (torch.from_numpy(problem.scale**2)[:, None] * ((d @ torch.from_numpy(problem.gram[0])) * d)).sum()
        loss = loss / num_samples
        if it > warmup:
            beta = rr.BETA_START + (rr.BETA_END - rr.BETA_START) * (it - warmup - 1) / max(iterations - warmup - 1, 1)
            loss = loss + rr.REG_WEIGHT * (1 - (2 * h[free] - 1).abs().pow(beta)).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    h = torch.clamp(torch.sigmoid(logits) * (rr.ZETA - rr.GAMMA) + rr.GAMMA, 0, 1).detach()
    return torch.where(free & (h >= 0.5), 1.0, 0.0).numpy()


def test_on_a_real_layer_it_beats_round_to_nearest_and_matches_autograd():
    split = digits_split()
    model, calib = load_model("digits-cnn"), split.train.subset(256, seed=0)
    gram = _collect_grams(model, ["conv2"], calib.images, 256)["conv2"]
    problem = layer_problem(model.conv2, gram, 2, name="conv2")
    rtn = problem.energies(_rtn_assignment(problem, model.conv2)).sum()
    assert problem.energies(relaxed_rounding(problem, len(calib), iterations=3000)).sum() < 0.25 * rtn
    ours = problem.energies(relaxed_rounding(problem, len(calib), iterations=400))
    reference = problem.energies(_autograd_reference(problem, len(calib), 400))
    np.testing.assert_allclose(ours, reference, rtol=1e-6)


def test_the_model_is_rounded_on_the_grid_and_left_unchanged():
    model, calib = _Net(), _calib()
    before = copy.deepcopy(model.state_dict())
    rounded = relaxed_rounding_model(model, calib, bits=2, iterations=500)
    for name in ("a", "b"):
        w = model.get_submodule(name).weight.detach()
        s = channel_scales(w, 2, "minmax")
        lev = rounding_levels(w, rounded.get_submodule(name).weight.detach(), s)
        assert lev.abs().max() <= levels(2)
        torch.testing.assert_close(rounded.get_submodule(name).weight, lev.float() * s[:, None], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(rounded.get_submodule(name).bias, model.get_submodule(name).bias)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_settings_are_refused_plainly():
    _model, calib, problem = _problem(2)
    with pytest.raises(InvalidInputError, match="iterations"):
        relaxed_rounding(problem, len(calib), iterations=0)
    with pytest.raises(InvalidInputError, match="num_samples"):
        relaxed_rounding(problem, 0)
