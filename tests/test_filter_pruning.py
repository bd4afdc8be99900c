"""F2 hybrid filter pruning: QUBO, capacity search, removal, baselines, refinement."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from core.compress.filters import MaskedEvaluator, apply_filter_decision, filter_plans
from core.data import digits_split
from core.data.dataset import EvalData
from core.errors import InvalidInputError
from core.formulations.filter_pruning import (
    capacity_search,
    filter_qubo,
    kept_count,
    layer_formulation,
    prune_filters,
    qubo_energy,
    refine_tt,
    selection_terms,
    swap_polish,
    top_k,
)
from core.models import count_parameters, load_model
from core.sensitivity.filters import filter_statistics


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    return load_model("digits-cnn")


@pytest.fixture(scope="module")
def calib() -> EvalData:
    return digits_split().train.subset(128, seed=0)


def _random_problem(rng: np.random.Generator, c: int) -> tuple[np.ndarray, np.ndarray]:
    imp = rng.gamma(2.0, 1.0, size=c)
    a = rng.normal(size=(c, 20))
    sim = np.abs(np.corrcoef(a))
    np.fill_diagonal(sim, 0.0)
    return imp, sim


def _direct(x: np.ndarray, imp: np.ndarray, sim: np.ndarray, k: int, mu: float, p: float, shift: float) -> float:
    """The DESIGN formula written out with loops, on the documented normalisation."""
    c = len(x)
    i_n = imp / imp.mean()
    s_n = sim / max(k - 1, 1)
    e = -sum(i_n[i] * x[i] for i in range(c))
    e += mu * sum(s_n[i, j] * x[i] * x[j] for i in range(c) for j in range(i + 1, c))
    e += p * (sum(x) - k) ** 2 - shift * sum(x)
    return float(e)


@settings(max_examples=40, deadline=None)
@given(
    c=st.integers(2, 9),
    seed=st.integers(0, 10_000),
    mu=st.floats(0, 5),
    p=st.floats(0, 3),
    shift=st.floats(-3, 3),
    data=st.data(),
)
def test_qubo_energy_equals_formula(c: int, seed: int, mu: float, p: float, shift: float, data) -> None:
    rng = np.random.default_rng(seed)
    imp, sim = _random_problem(rng, c)
    k = data.draw(st.integers(1, c))
    form = filter_qubo(imp, sim, k, mu=mu, penalty=p, shift=shift)
    for _ in range(5):
        x = rng.integers(0, 2, size=c)
        assert form.bqm.energy({i: int(x[i]) for i in range(c)}) == pytest.approx(
            _direct(x, imp, sim, k, mu, p, shift), abs=1e-9
        )


@pytest.mark.parametrize(("c", "k", "mu"), [(6, 3, 0.5), (8, 2, 2.0), (8, 5, 1.0), (10, 4, 4.0), (7, 6, 0.0)])
def test_exact_solver_capacity_search_keeps_exactly_k(c: int, k: int, mu: float) -> None:
    rng = np.random.default_rng(c * 100 + k)
    imp, sim = _random_problem(rng, c)
    res = capacity_search(imp, sim, k, mu=mu, sampler="exact", num_reads=1, polish=False)
    assert len(res.kept) == k and res.decision.feasible and not res.repaired
    assert res.hit
    # the exact solver's answer is the best K-subset of the objective
    form = filter_qubo(imp, sim, k, mu=mu, penalty=0.0)
    best = min(
        itertools.combinations(range(c), k),
        key=lambda s: form.bqm.energy({i: int(i in s) for i in range(c)}),
    )
    e_best = form.bqm.energy({i: int(i in best) for i in range(c)})
    e_got = form.bqm.energy({i: int(i in res.kept) for i in range(c)})
    assert e_got == pytest.approx(e_best, abs=1e-9)


def test_capacity_search_with_sa_and_tiny_penalty_still_exact() -> None:
    rng = np.random.default_rng(3)
    imp, sim = _random_problem(rng, 16)
    for k in (1, 5, 8, 15):
        res = capacity_search(imp, sim, k, mu=1.0, penalty=0.01, sampler="sa", num_reads=20, seed=1)
        assert len(res.kept) == k and res.decision.feasible


def test_swap_polish_never_increases_objective() -> None:
    rng = np.random.default_rng(0)
    imp, sim = _random_problem(rng, 12)
    form = filter_qubo(imp, sim, 5, mu=1.5, penalty=0.0)
    i_n = np.array(form.tables["importance_normalised"])
    s_n = np.array(form.tables["similarity_normalised"])
    x = np.zeros(12)
    x[:5] = 1
    y, _ = swap_polish(x, i_n, s_n, 1.5)
    assert y.sum() == 5
    assert form.bqm.energy(dict(enumerate(y.astype(int)))) <= form.bqm.energy(dict(enumerate(x.astype(int)))) + 1e-12


def test_removal_equals_masking_and_shrinks_digits_cnn(cnn: nn.Module) -> None:
    rng = np.random.default_rng(0)
    kept = {"conv1": sorted(rng.choice(16, 8, replace=False).tolist()), "conv2": sorted(rng.choice(32, 16, replace=False).tolist())}
    removed = apply_filter_decision(cnn, kept)
    masked = apply_filter_decision(cnn, kept, mode="mask")
    assert removed.removed == ["conv1", "conv2"] and removed.masked == {}
    assert set(masked.masked) == {"conv1", "conv2"}
    x = digits_split().test.images[:64]
    with torch.no_grad():
        assert torch.allclose(removed.model(x), masked.model(x), atol=1e-5)
    assert removed.params_after < count_parameters(cnn) == masked.params_after
    assert removed.model.conv2.weight.shape == (16, 8, 3, 3)
    assert removed.model.fc.in_features == 16 * 16
    assert count_parameters(cnn) == 9930  # the original is untouched


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 6, 3, padding=1)
        self.a = nn.Conv2d(6, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.b = nn.Conv2d(8, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = h + self.b(torch.relu(self.bn(self.a(h))))
        return self.fc(h.mean(dim=(2, 3)))


def test_residual_join_is_masked_and_chain_with_batchnorm_removed() -> None:
    torch.manual_seed(0)
    model = _Residual().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
        model.bn.bias.uniform_(-1, 1)
    plans = filter_plans(model)
    assert plans["a"].removable and plans["a"].batchnorms == ("bn",)
    assert not plans["stem"].removable and not plans["b"].removable
    kept = {"stem": [0, 2, 4], "a": [1, 3, 5, 7], "b": [0, 1, 5]}
    out = apply_filter_decision(model, kept)
    ref = apply_filter_decision(model, kept, mode="mask")
    assert out.removed == ["a"] and set(out.masked) == {"stem", "b"}
    assert "residual" in out.masked["b"] or "more than one place" in out.masked["b"]
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(out.model(x), ref.model(x), atol=1e-5)
    assert out.model.bn.num_features == 4 and out.model.b.in_channels == 4


def _double_batchnorm_chain() -> nn.Sequential:
    """conv -> BN -> ReLU -> BN -> conv: a BatchNorm maps a zero channel to a constant."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.BatchNorm2d(6),
                          nn.Conv2d(6, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    with torch.no_grad():
        for bn in (model[1], model[3]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
    return model


def test_every_batchnorm_on_the_path_is_pruned_alike_by_removal_masking_and_the_evaluator() -> None:
    model = _double_batchnorm_chain()
    plans = filter_plans(model)
    assert plans["0"].removable and plans["0"].batchnorms == ("1", "3")
    kept = {"0": [0, 2, 5]}
    removed = apply_filter_decision(model, kept)
    masked = apply_filter_decision(model, kept, mode="mask")
    assert removed.removed == ["0"] and removed.model[3].num_features == 3
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,))
    with torch.no_grad():
        torch.testing.assert_close(removed.model(x), masked.model(x), rtol=1e-5, atol=1e-5)
        assert (masked.model[:4](x)[:, [1, 3, 4]] == 0).all()
        direct = float(nn.functional.cross_entropy(removed.model(x), y))
    assert MaskedEvaluator(model, x, y, ["0"]).loss(kept) == pytest.approx(direct, rel=1e-5)


class _Gates(nn.Module):
    """Filters followed by activations with f(0) != 0 or per-channel parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 5, 3, padding=1)
        self.c3 = nn.Conv2d(5, 4, 3, padding=1)
        self.gate = nn.Hardsigmoid()
        self.prelu = nn.PReLU(4)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        x = self.gate(self.c2(torch.sigmoid(self.c1(x))))
        return self.fc(self.prelu(self.c3(x)).flatten(1))


def test_filters_feeding_sigmoid_hardsigmoid_or_prelu_are_masked_not_removed() -> None:
    torch.manual_seed(0)
    model = _Gates().eval()
    with torch.no_grad():
        model.prelu.weight.uniform_(0.05, 0.5)
    kept = {"c1": [0, 1, 2, 3], "c2": [0, 1, 2], "c3": [1, 3]}
    out = apply_filter_decision(model, kept)
    ref = apply_filter_decision(model, kept, mode="mask")
    assert out.removed == [] and set(out.masked) == {"c1", "c2", "c3"}
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(out.model(x), ref.model(x))
    evaluator = MaskedEvaluator(model, x, torch.tensor([0, 1, 2, 0]), ["c1", "c2", "c3"])
    with torch.no_grad():
        direct = float(torch.nn.functional.cross_entropy(out.model(x), torch.tensor([0, 1, 2, 0])))
    assert evaluator.loss(kept) == pytest.approx(direct, rel=1e-5)  # refinement scores the model it builds


@pytest.mark.parametrize("channels, sparsity, kept", [(30, 0.55, 14), (15, 0.9, 2), (10, 0.25, 8), (16, 0.5, 8)])
def test_kept_count_rounds_exact_halves_up(channels: int, sparsity: float, kept: int) -> None:
    assert kept_count(channels, sparsity) == kept


def test_statistics_and_baselines_on_digits_cnn(cnn: nn.Module, calib: EvalData) -> None:
    res = prune_filters(cnn, calib, sparsity=0.5, importance="taylor", mu=0.0, seed=0, num_reads=20,
                        measure_speed=False)
    stats = res.stats
    for name, c in (("conv1", 16), ("conv2", 32)):
        l1 = cnn.get_submodule(name).weight.detach().abs().flatten(1).sum(1).double().numpy()
        assert np.allclose(stats[name].l1, l1)
        assert stats[name].similarity.shape == (c, c) and (stats[name].similarity <= 1).all()
        assert res.baselines["greedy_taylor"].kept[name] == top_k(stats[name].taylor, c // 2)
        assert res.baselines["l1_topk"].kept[name] == top_k(l1, c // 2)
        # mu = 0: the QUBOs are exactly top-K of their importance
        assert res.baselines["l1_qubo"].kept[name] == res.baselines["l1_topk"].kept[name]
        assert res.kept[name] == res.baselines["greedy_taylor"].kept[name]
    assert res.removed == ["conv1", "conv2"] and res.result.params < count_parameters(cnn)
    report = res.as_dict()
    assert set(report["baselines"]) == {"greedy_taylor", "l1_topk", "l1_qubo"}
    assert all(len(v) == 8 for k, v in report["kept"].items() if k == "conv1")


def test_top_k_toy() -> None:
    assert top_k([0.1, 0.5, 0.3, 0.5, 0.0], 2) == [1, 3]
    assert top_k([3, 1, 2], 1) == [0]
    assert kept_count(16, 0.5) == 8 and kept_count(32, 0.5) == 16 and kept_count(3, 0.9) == 1


def test_taylor_matches_manual_gradient(cnn: nn.Module) -> None:
    data = digits_split().train.subset(8, seed=1)
    stats = filter_statistics(cnn, data, ["conv1"])["conv1"]
    acts = {}
    handle = cnn.conv1.register_forward_hook(lambda _m, _i, o: acts.setdefault("a", o))
    out = cnn(data.images)
    handle.remove()
    a = acts["a"]
    (g,) = torch.autograd.grad(nn.functional.cross_entropy(out, data.labels, reduction="sum"), a)
    ag = (a * g).flatten(2).sum(2).detach().double()
    assert np.allclose(stats.taylor, ag.abs().mean(0).numpy(), rtol=1e-5, atol=1e-9)
    assert np.allclose(stats.fisher, (ag**2).sum(0).numpy(), rtol=1e-5, atol=1e-12)
    assert np.allclose(stats.fisher_matrix, (ag.T @ ag).numpy(), rtol=1e-5, atol=1e-12)
    assert np.allclose(np.diag(stats.importance("fisher-matrix")), stats.fisher)


def _taylor_at(model: nn.Module, module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """First-order Taylor score of every channel of ``module``'s output, computed directly."""
    acts = {}
    handle = module.register_forward_hook(lambda _m, _i, o: acts.setdefault("a", o))
    out = model(x)
    handle.remove()
    (g,) = torch.autograd.grad(nn.functional.cross_entropy(out, y, reduction="sum"), acts["a"])
    return (acts["a"] * g).flatten(2).sum(2).detach().double().abs().mean(0).numpy()


def test_taylor_is_taken_where_pruning_acts_after_batchnorm() -> None:
    """Pruning zeroes the BatchNorm's output channel, so that is where the scores are measured."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 3),
                          nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].bias.uniform_(-1, 1)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 3, (32,))
    stats = filter_statistics(model, EvalData("toy", x, y, 3), ["0"])["0"]
    assert np.allclose(stats.taylor, _taylor_at(model, model[1], x, y), rtol=1e-5, atol=1e-9)
    assert not np.allclose(stats.taylor, _taylor_at(model, model[0], x, y), rtol=1e-2)
    # with two BatchNorms on the path, pruning zeroes the channel after the last one
    model = _double_batchnorm_chain()
    stats = filter_statistics(model, EvalData("toy", x, y, 3), ["0"])["0"]
    assert np.allclose(stats.taylor, _taylor_at(model, model[3], x, y), rtol=1e-5, atol=1e-9)


def test_refinement_never_worse_on_calibration_loss(cnn: nn.Module, calib: EvalData) -> None:
    stats = filter_statistics(cnn, calib)
    start = {n: top_k(s.l1, s.out_channels // 2) for n, s in stats.items()}
    evaluator = MaskedEvaluator(cnn, calib.images, calib.labels, list(stats))
    scores = {n: s.taylor for n, s in stats.items()}
    best, info = refine_tt(evaluator.loss, start, scores, slots=2, candidates=4, evals=120, rank=2, seed=0)
    assert info["method"] == "ttopt"
    assert evaluator.loss(best) <= evaluator.loss(start) + 1e-12
    assert info["loss"] <= info["start_loss"]
    assert all(len(best[n]) == len(start[n]) for n in start)
    # the masked loss is the loss of the really pruned model
    pruned = apply_filter_decision(cnn, best)
    with torch.no_grad():
        loss = nn.functional.cross_entropy(pruned.model(calib.images), calib.labels).item()
    assert loss == pytest.approx(evaluator.loss(best), rel=1e-5)


def test_refinement_exhaustive_on_small_grid_finds_better_swap() -> None:
    target = {"L": [0, 1, 5]}

    def loss(kept: dict[str, list[int]]) -> float:
        return float(len(set(kept["L"]) ^ set(target["L"])))

    best, info = refine_tt(loss, {"L": [0, 1, 2]}, {"L": np.array([5, 4, 1, 0, 0, 3.0])}, slots=1, candidates=3, evals=50)
    assert info["method"] == "exhaustive" and best == target and info["improved"]


def test_prune_filters_refine_and_finetune(cnn: nn.Module, calib: EvalData) -> None:
    train = digits_split().train.subset(64, seed=3)
    res = prune_filters(
        cnn, calib, sparsity={"conv1": 0.25, "conv2": 0.5}, importance="fisher", mu=0.5, seed=1, num_reads=10,
        refine="tt", refine_options={"slots": 2, "candidates": 3, "evals": 100}, finetune_epochs=1, train_data=train,
        measure_speed=False,
    )
    assert [len(res.kept["conv1"]), len(res.kept["conv2"])] == [12, 16]
    assert res.refinement is not None and res.refinement["loss"] <= res.refinement["start_loss"]
    assert res.params["finetune_epochs"] == 1 and set(res.baselines) == {"greedy_taylor", "l1_topk", "l1_qubo"}


def test_layer_formulation_for_heatmap(cnn: nn.Module, calib: EvalData) -> None:
    form = layer_formulation(cnn, calib, "conv2", sparsity=0.5, mu=1.0)
    assert form.num_variables == 32 and form.params["k"] == 16
    assert np.array(form.tables["similarity_normalised"]).shape == (32, 32)
    decision = form.decode(dict.fromkeys(range(32), 0))
    assert not decision.feasible and decision.violations


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sparsity": 1.0},
        {"sparsity": -0.1},
        {"sparsity": 0.5, "importance": "hessian"},
        {"sparsity": 0.5, "layers": ["fc"]},
        {"sparsity": 0.5, "refine": "ga"},
        {"sparsity": 0.5, "finetune_epochs": 1},
        {"sparsity": 0.5, "mu": -1},
        {"sparsity": 0.5, "num_reads": 0},
        {"sparsity": {"conv9": 0.5}},
    ],
)
def test_invalid_parameters_raise_plain_errors(cnn: nn.Module, calib: EvalData, kwargs: dict) -> None:
    with pytest.raises(InvalidInputError):
        prune_filters(cnn, calib, **kwargs)


def test_invalid_decisions_raise(cnn: nn.Module) -> None:
    with pytest.raises(InvalidInputError):
        apply_filter_decision(cnn, {"conv1": []})
    with pytest.raises(InvalidInputError):
        apply_filter_decision(cnn, {"conv1": [0, 16]})
    with pytest.raises(InvalidInputError):
        apply_filter_decision(cnn, {"fc": [0]})
    with pytest.raises(InvalidInputError):
        filter_qubo([1.0, 2.0], [[0, 1], [1, 0]], 3)


@pytest.mark.parametrize("kind", ["pearson", "cosine"])
def test_redundancy_matches_the_activations_computed_directly_whatever_the_batch(cnn, calib, kind):
    with torch.no_grad():
        acts = cnn.conv2(cnn.act(cnn.conv1(calib.images)))  # digits-cnn has no BatchNorm after conv2
    x = acts.transpose(0, 1).reshape(acts.shape[1], -1).double().numpy()
    if kind == "pearson":
        x = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1)
    expected = np.abs(x @ x.T) / np.outer(norms, norms)
    np.fill_diagonal(expected, 0.0)
    for batch_size in (7, 256):
        got = filter_statistics(cnn, calib, ["conv2"], similarity=kind, batch_size=batch_size)["conv2"].similarity
        # float32 convolutions may round differently per batch size and CPU (~1e-7); a wrong streamed sum is far off
        np.testing.assert_allclose(got, np.clip(expected, 0, 1), atol=1e-6)


def test_streamed_correlation_stays_accurate_when_the_mean_dwarfs_the_spread():
    from core.sensitivity.filters import _ActivationMoments

    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 4000))
    base[1] = 0.6 * base[0] + 0.8 * base[1]  # correlation 0.6 with channel 0
    moments = _ActivationMoments()
    for chunk in np.array_split(1e7 + base, 9, axis=1):
        moments.add(torch.from_numpy(chunk))
    expected = np.abs(np.corrcoef(base))
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(moments.similarity("pearson"), expected, atol=1e-9)


# --------------------------------------------------------------------------- the Fisher-matrix importance


def _fisher_problem(rng: np.random.Generator, c: int) -> tuple[np.ndarray, np.ndarray]:
    """A PSD empirical Fisher matrix (sum of per-sample outer products) and a similarity."""
    t = rng.normal(size=(40, c)) * rng.gamma(1.0, 1.0, size=c)
    _, sim = _random_problem(rng, c)
    return t.T @ t, sim


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), c=st.integers(2, 9), mu=st.floats(0.0, 3.0), p=st.floats(0.0, 2.0))
def test_fisher_matrix_qubo_is_the_joint_removal_estimate(seed: int, c: int, mu: float, p: float) -> None:
    """E(x) = (1-x)^T F (1-x) - 1^T F 1 + mu sum S x x + P (sum x - K)^2 on the normalised F and S, for every x."""
    rng = np.random.default_rng(seed)
    fisher, sim = _fisher_problem(rng, c)
    k = int(rng.integers(1, c + 1))
    form = filter_qubo(fisher, sim, k, mu=mu, penalty=p, importance_kind="fisher-matrix")
    f_n = fisher / np.diag(fisher).mean()
    s_n = sim / max(k - 1, 1)
    for bits in itertools.product((0, 1), repeat=c):
        x = np.array(bits, dtype=float)
        r = 1.0 - x
        direct = r @ f_n @ r - f_n.sum() + mu * x @ np.triu(s_n, 1) @ x + p * (x.sum() - k) ** 2
        assert form.bqm.energy(dict(enumerate(bits))) == pytest.approx(direct, rel=1e-9, abs=1e-9)
        assert qubo_energy(x, fisher, sim, k, mu=mu, penalty=p) == pytest.approx(direct, rel=1e-9, abs=1e-9)


def test_diagonal_fisher_matrix_is_the_fisher_score_qubo() -> None:
    rng = np.random.default_rng(1)
    scores, sim = _random_problem(rng, 7)
    by_matrix = filter_qubo(np.diag(scores), sim, 3, mu=0.7, penalty=0.2)
    by_scores = filter_qubo(scores, sim, 3, mu=0.7, penalty=0.2)
    for bits in itertools.product((0, 1), repeat=7):
        sample = dict(enumerate(bits))
        assert by_matrix.bqm.energy(sample) == pytest.approx(by_scores.bqm.energy(sample), abs=1e-9)


def test_capacity_search_with_fisher_matrix_finds_the_brute_force_optimum() -> None:
    rng = np.random.default_rng(7)
    for c, k in ((10, 5), (12, 4)):
        fisher, sim = _fisher_problem(rng, c)
        terms = selection_terms(fisher, sim, k, mu=0.5)
        subsets = np.array([[1.0 if i in comb else 0.0 for i in range(c)]
                            for comb in itertools.combinations(range(c), k)])
        best = float(terms.objective(subsets).min())
        res = capacity_search(fisher, sim, k, mu=0.5, sampler="sa", num_reads=20, seed=0,
                              importance_kind="fisher-matrix")
        x = np.zeros(c)
        x[res.kept] = 1.0
        assert len(res.kept) == k
        assert float(terms.objective(x)[0]) == pytest.approx(best, abs=1e-9)
        assert res.decision.details["objective"] == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.array([[1.0, 0.5], [0.1, 1.0]]), "symmetric"),
        (np.array([[-1.0, 0.0], [0.0, 1.0]]), "diagonal"),
        (np.ones((2, 3)), "square matrix"),
        (np.array([[1.0, 5.0], [5.0, 1.0]]), "positive semi-definite"),
    ],
)
def test_bad_fisher_matrix_is_refused_in_plain_words(matrix: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        filter_qubo(matrix, np.zeros((2, 2)), 1)


def test_fisher_matrix_rounding_is_tolerated_and_the_kind_is_inferred() -> None:
    nearly = np.array([[1e3, 1e-3], [1e-3 * (1 + 1e-4), 1e3]])  # float32-like rounding off the diagonal
    form = filter_qubo(nearly, np.zeros((2, 2)), 1)
    assert form.params["importance"] == "fisher-matrix"
    assert np.allclose(form.tables["importance_normalised"], np.array(form.tables["importance_normalised"]).T)
    assert filter_qubo(np.ones(2), np.zeros((2, 2)), 1).params["importance"] == "taylor"


def test_fisher_matrix_is_the_default_and_prunes_digits_cnn(cnn: nn.Module, calib: EvalData) -> None:
    res = prune_filters(cnn, calib, sparsity=0.5, seed=0, num_reads=20, measure_speed=False, baselines=False)
    assert res.params["importance"] == "fisher-matrix"
    for name in ("conv1", "conv2"):
        terms = selection_terms(res.stats[name].fisher_matrix, res.stats[name].similarity, len(res.kept[name]),
                                mu=res.params["mu"])
        x = np.zeros(res.stats[name].out_channels)
        x[res.kept[name]] = 1.0
        assert res.decisions[name].details["objective"] == pytest.approx(float(terms.objective(x)[0]), abs=1e-9)
    assert res.removed == ["conv1", "conv2"] and 0.0 <= res.result.accuracy <= 1.0
    assert res.result.correct.shape == (len(calib),) and res.result.correct.mean() == res.result.accuracy
