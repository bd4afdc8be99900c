"""F3's Fisher-weighted objective (``target="fisher"``): the Fisher diagonal against autograd Jacobians,
the QUBO energy against the directly computed weighted error, the model-level run and its refusals."""

from __future__ import annotations

import copy

import dimod
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from toy_models import TwoLayer, random_calib

import core.formulations.adaround as ada
from core.compress.relaxed_rounding import relaxed_rounding_model
from core.errors import InvalidInputError
from core.formulations.adaround import (
    FISHER_DAMPING,
    _collect_fisher_grams,
    _collect_grams,
    channel_formulation_of,
    layer_problem,
    quantize_model_adaround,
)
from core.formulations.output_fisher import output_fisher


class _ConvNet(nn.Module):
    """Conv2d ``conv`` -> ReLU -> Linear ``fc``: a conv layer whose outputs reach the logits through a ReLU."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(2, 3, 2, padding=1)
        self.fc = nn.Linear(3 * 4 * 5, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _output_of(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().clone()))
    try:
        model(x)
    finally:
        handle.remove()
    return seen[0]


def _fisher_by_jacobian(model: nn.Module, name: str, images: torch.Tensor) -> torch.Tensor:
    """diag(J^T (diag p - p p^T) J) per input, with J the full Jacobian of the logits by the layer's output."""
    model = copy.deepcopy(model).double().eval()
    layer = model.get_submodule(name)
    rows = []
    for x in images.double():
        with torch.no_grad():
            z0 = _output_of(model, layer, x[None])

        def logits_of(z, x=x):
            handle = layer.register_forward_hook(lambda _m, _i, _out: z.clone())  # later layers may work in place
            try:
                return model(x[None])[0]
            finally:
                handle.remove()

        jac = torch.autograd.functional.jacobian(logits_of, z0)  # (classes, *z.shape)
        p = torch.softmax(logits_of(z0), 0)
        h = torch.diag(p) - torch.outer(p, p)
        jac = jac.reshape(p.shape[0], -1)
        rows.append(torch.einsum("ki,kl,li->i", jac, h, jac).reshape(z0.shape[1:]))
    return torch.stack(rows)


def _inplace_relu_net() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv2d(2, 3, 2), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(3 * 2 * 3, 3))


@pytest.mark.parametrize(("model", "name", "shape"), [
    (_ConvNet(0), "conv", (2, 3, 4)),
    (_inplace_relu_net(), "0", (2, 3, 4)),
    (_ConvNet(1), "fc", (2, 3, 4)),
    (TwoLayer(6, 5, 3, seed=2), "a", (6,)),
])
def test_the_fisher_diagonal_is_that_of_the_jacobian(model, name, shape):
    images = torch.randn(5, *shape, generator=torch.Generator().manual_seed(3))
    got = torch.cat([h for _x, h in output_fisher(model, name, images, batch_size=2)])
    expected = _fisher_by_jacobian(model, name, images)
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-7)
    if name == "fc":  # the logits themselves: p (1 - p)
        p = torch.softmax(model(images), 1)
        torch.testing.assert_close(got, p * (1 - p), rtol=1e-5, atol=1e-7)
    # no gradients left on the model
    assert all(prm.grad is None for prm in model.parameters())


def _weighted_error(model: nn.Module, name: str, images: torch.Tensor, j: int, w_row: np.ndarray) -> float:
    """sum over rows of w_rj (y_hat_rj - y_rj)^2, with the Fisher weights normalised and damped as documented."""
    layer = model.get_submodule(name)
    xs, hs = zip(*output_fisher(model, name, images), strict=True)
    x, fisher = torch.cat(xs).double(), torch.cat(hs).double()
    weights = (1 - FISHER_DAMPING) * fisher / fisher.mean() + FISHER_DAMPING
    ref = copy.deepcopy(layer).double()
    with torch.no_grad():
        y = ref(x)
        w_hat = ref.weight.detach().clone()
        w_hat[j] = torch.from_numpy(w_row).reshape(w_hat[j].shape)
        y_hat = F.linear(x, w_hat, ref.bias) if isinstance(ref, nn.Linear) else ref._conv_forward(x, w_hat, ref.bias)
    pick = (Ellipsis, j) if isinstance(ref, nn.Linear) else (slice(None), j)  # the channel axis
    return float((weights[pick] * (y_hat - y)[pick] ** 2).sum())


@given(seed=st.integers(0, 1000), bits=st.integers(1, 4), conv=st.booleans())
def test_fisher_energy_is_the_fisher_weighted_squared_output_error(seed, bits, conv):
    model: nn.Module = _ConvNet(seed) if conv else TwoLayer(5, 4, 3, seed=seed)
    name = "conv" if conv else "a"
    images = torch.randn(6, *((2, 3, 4) if conv else (5,)), generator=torch.Generator().manual_seed(seed))
    layer = model.get_submodule(name)
    problem = layer_problem(layer, _collect_fisher_grams(model, name, images, 4), bits, name=name)
    rng = np.random.default_rng(seed)
    for j in range(problem.out_channels):
        form = channel_formulation_of(problem, layer, j, rows=1, target="fisher")
        assert form.params["target"] == "fisher"
        v = np.zeros(problem.n)
        free = form.tables["free"]
        v[free] = rng.integers(0, 2, len(free))
        direct = _weighted_error(model, name, images, j, problem.scale[j] * (problem.lower[j] + problem.step[j] * v))
        sample = {i: int(v[i]) for i in free}
        energy = form.bqm.energy(sample) if sample else form.bqm.offset
        assert energy == pytest.approx(direct, rel=1e-6, abs=1e-9)
        assert form.decode(sample).details["squared_error"] == pytest.approx(direct, rel=1e-6, abs=1e-9)


def test_the_fisher_target_rounds_every_channel_to_its_own_optimum():
    model = TwoLayer(6, 3, 2, seed=5)
    calib = random_calib(64, (1, 2, 3), 2, seed=0)
    res = quantize_model_adaround(model, calib, bits=2, sampler=dimod.ExactSolver(), polish=False, target="fisher")
    assert [r.target for r in res.layers] == ["fisher", "fisher"] and res.params["target"] == "fisher"
    for r in res.layers:
        assert r.energy_ratio <= 1 + 1e-12  # never worse than RTN on its own objective
    for name in ("a", "b"):
        problem = res.problems[name]
        # each layer's weights come from the network with earlier layers rounded, later ones float
        stage = model if name == "a" else copy.deepcopy(res.model)
        stage.b.load_state_dict(model.b.state_dict())
        expected = _collect_fisher_grams(stage, name, calib.images, 256)[:, : problem.n, : problem.n]
        np.testing.assert_allclose(problem.gram, expected, rtol=1e-6, atol=1e-9)
        v = problem.assignment_of(res.weights[name].double().numpy())
        for j in range(problem.out_channels):
            optimum = dimod.ExactSolver().sample(channel_formulation_of(problem, model.get_submodule(name), j,
                                                                        rows=64).bqm).first.energy
            assert problem.energies(v[j][None], np.array([j]))[0] == pytest.approx(optimum, rel=1e-9, abs=1e-12)


def test_a_layer_the_predictions_ignore_gets_the_plain_objective():
    model = TwoLayer(4, 3, 2, seed=1)
    with torch.no_grad():
        model.b.weight.zero_()  # the logits no longer depend on layer a
    images = torch.randn(8, 4)
    np.testing.assert_allclose(_collect_fisher_grams(model, "a", images, 4),
                               _collect_grams(model, ["a"], images, 4)["a"][[0, 0, 0]])


def test_fisher_grams_too_large_together_are_refused_before_any_work(monkeypatch):
    model = TwoLayer(6, 3, 2, seed=5)
    calib = random_calib(8, (6,), 2, seed=0)
    # layer a: 3 channels x 7 x 7, layer b: 2 x 4 x 4 float64 numbers; each fits alone, not both
    monkeypatch.setattr(ada, "MAX_FISHER_GRAM_BYTES", (3 * 49 + 2 * 16) * 8 - 1)
    calls = []
    sampler = lambda bqm, **kw: calls.append(bqm) or dimod.ExactSolver().sample(bqm)  # noqa: E731
    with pytest.raises(InvalidInputError, match=r"the 2 layers \(the largest, a, 0\.0 GiB\).*layer objective"):
        quantize_model_adaround(model, calib, bits=2, sampler=sampler, target="fisher")
    assert not calls
    for layers in (["a"], ["b"]):
        assert quantize_model_adaround(model, calib, bits=2, sampler=sampler, target="fisher", layers=layers).problems


def test_a_layer_called_twice_is_refused_by_the_fisher_objective():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)

        def forward(self, x):
            return self.a(torch.relu(self.a(x)))

    with pytest.raises(InvalidInputError, match="called 2 times per forward pass"):
        _collect_fisher_grams(Twice(), "a", torch.randn(4, 3), 4)


def test_the_fisher_objective_needs_class_logits():
    model = nn.Sequential(nn.Linear(3, 2), nn.Flatten(0))  # a flat output, not N x classes
    with pytest.raises(InvalidInputError, match="N x classes logits"):
        _collect_fisher_grams(model, "0", torch.randn(4, 3), 4)


def test_the_relaxation_baseline_takes_the_fisher_objective():
    model = TwoLayer(6, 3, 2, seed=5)
    calib = random_calib(32, (6,), 2, seed=0)
    rounded = relaxed_rounding_model(model, calib, bits=2, iterations=200, target="fisher")
    assert not torch.equal(rounded.a.weight, model.a.weight)
    with pytest.raises(InvalidInputError, match="target must be 'layer' or 'fisher'"):
        relaxed_rounding_model(model, calib, bits=2, iterations=10, target="float_outputs")


def test_beyond_the_row_cap_a_seeded_subset_stands_for_all_rows(monkeypatch):
    model = _ConvNet(2)
    images = torch.randn(40, 2, 3, 4, generator=torch.Generator().manual_seed(0))  # 20 rows per image: 800
    full = _collect_fisher_grams(model, "conv", images, 16)
    monkeypatch.setattr(ada, "FISHER_MAX_ROWS", 800)
    np.testing.assert_array_equal(_collect_fisher_grams(model, "conv", images, 16), full)  # all rows: exact
    monkeypatch.setattr(ada, "FISHER_MAX_ROWS", 300)
    part = _collect_fisher_grams(model, "conv", images, 16)
    np.testing.assert_array_equal(part, _collect_fisher_grams(model, "conv", images, 16))  # seeded
    # scaled up to all rows: the same size, and close in every channel
    for j in range(3):
        assert np.trace(part[j]) == pytest.approx(np.trace(full[j]), rel=0.2)
        assert np.linalg.norm(part[j] - full[j]) < 0.3 * np.linalg.norm(full[j])


def test_grouped_convolutions_and_3d_linear_inputs_get_their_own_channels_weights():
    torch.manual_seed(6)
    grouped = nn.Sequential(nn.Conv2d(4, 6, 2, groups=2), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 3))
    images = torch.randn(5, 4, 3, 3)
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3, 3))  # rows: 2 per sample
    tokens = torch.randn(5, 2, 4)
    for model, x in ((grouped, images), (seq, tokens)):
        layer = model[0]
        problem = layer_problem(layer, _collect_fisher_grams(model, "0", x, 2), 2, name="0")
        rng = np.random.default_rng(0)
        for j in range(problem.out_channels):
            form = channel_formulation_of(problem, layer, j, rows=1, target="fisher")
            v = np.zeros(problem.n)
            v[form.tables["free"]] = rng.integers(0, 2, len(form.tables["free"]))
            direct = _weighted_error(model, "0", x, j, problem.scale[j] * (problem.lower[j] + problem.step[j] * v))
            sample = {i: int(v[i]) for i in form.tables["free"]}
            assert form.bqm.energy(sample) == pytest.approx(direct, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("quantized_inputs", [True, False])
def test_the_problems_kept_are_the_layer_objective_rebuilt_from_the_result(quantized_inputs):
    model = TwoLayer(6, 3, 2, seed=5)
    calib = random_calib(32, (6,), 2, seed=0)
    res = quantize_model_adaround(model, calib, bits=2, use_quantized_inputs=quantized_inputs,
                                  sample_kwargs={"num_sweeps": 50})
    grams = _collect_grams(res.model if quantized_inputs else model, ["a", "b"], calib.images, 256)
    for name in ("a", "b"):
        rebuilt = layer_problem(model.get_submodule(name), grams[name], 2, name=name)
        np.testing.assert_allclose(res.problems[name].gram, rebuilt.gram, rtol=1e-12)


def test_formulate_builds_a_layers_fisher_matrices_once_for_all_its_channels(monkeypatch, digits_cnn_workspace):
    import core.methods.adaround as methods

    built = []
    real = methods._collect_fisher_grams
    monkeypatch.setattr(methods, "_collect_fisher_grams", lambda *a: built.append(a[1]) or real(*a))
    monkeypatch.setattr(methods, "_shown_fisher", {})
    first = methods.channel_problem(digits_cnn_workspace, "conv1", 0, bits=1, target="fisher")
    other = methods.channel_problem(digits_cnn_workspace, "conv1", 3, bits=2, scale="mse", target="fisher")
    again = methods.channel_problem(digits_cnn_workspace, "conv1", 0, bits=1, target="fisher")
    assert built == ["conv1"]
    assert again.bqm == first.bqm and other.params["channel"] == 3
    methods.channel_problem(digits_cnn_workspace, "fc", 0, bits=1, target="fisher")
    assert built == ["conv1", "fc"]
