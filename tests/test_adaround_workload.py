"""How big the rounding QUBOs of a network are, and the app's default choice of layers from that."""

from __future__ import annotations

import pytest
import torch
from dwave.samplers import SimulatedAnnealingSampler, TabuSampler
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from core.errors import InvalidInputError
from core.formulations.adaround import _anneals_as_given
from core.methods.adaround import (
    DEFAULT_LAYERS_BUDGET_S,
    LONG_RUN_S,
    RELAXATION_STEP_S,
    SA_COUPLER_UPDATES_PER_S,
    default_layers,
    layer_sizes,
    quantizable_layers,
    workload,
)
from core.methods.common import RegistrySampler
from core.models import load_model
from ui.common import human_duration


def test_layer_sizes_count_the_weights_of_one_output_channel():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 1, groups=2), nn.Flatten(), nn.Linear(16, 5))
    sizes = layer_sizes(model)
    assert [(s.layer, s.channels, s.weights_per_channel) for s in sizes] == [("0", 8, 27), ("1", 4, 4), ("3", 5, 16)]
    assert sizes[0].couplers == 8 * 27 * 26 // 2
    assert sizes[2].sa_seconds(num_reads=2, num_sweeps=10) == pytest.approx(5 * 120 * 20 / SA_COUPLER_UPDATES_PER_S)
    fixed, per_weight, per_product = RELAXATION_STEP_S
    assert sizes[2].relaxation_seconds(100) == pytest.approx(100 * (fixed + per_weight * 80 + per_product * 80 * 16))
    assert workload(model, ["3"]).relaxation_seconds(100) == pytest.approx(2 * sizes[2].relaxation_seconds(100))


@given(st.lists(st.tuples(st.integers(1, 64), st.integers(1, 3000)), min_size=1, max_size=12),
       st.floats(0.0, 100.0))
def test_default_layers_are_the_smallest_within_the_budget_in_model_order(shapes, budget):
    model = nn.Sequential(*(nn.Linear(f, c, bias=False) for c, f in shapes))
    chosen = default_layers(model, budget_s=budget)
    sizes = {s.layer: s for s in layer_sizes(model)}
    assert chosen == [n for n in quantizable_layers(model) if n in chosen]  # model order
    assert chosen  # at least the smallest layer
    assert len(chosen) == 1 or sum(sizes[n].sa_seconds() for n in chosen) <= budget
    largest_chosen = max(sizes[n].couplers for n in chosen)
    left_out = [s for s in sizes.values() if s.layer not in chosen]
    # nothing smaller than a chosen layer is left out (ties aside)
    assert all(s.couplers >= largest_chosen for s in left_out)


def test_the_digits_models_are_quantized_whole_by_default_but_resnet18_is_not():
    for name in ("digits-cnn", "digits-mlp"):
        model = load_model(name)
        assert default_layers(model) == quantizable_layers(model)
    resnet = load_model("resnet18", weights="random")
    chosen = default_layers(resnet)
    assert "layer4.1.conv2" not in chosen
    assert sum(s.sa_seconds() for s in layer_sizes(resnet)) > 3600  # hours if run whole
    assert sum(s.sa_seconds() for s in layer_sizes(resnet) if s.layer in chosen) <= DEFAULT_LAYERS_BUDGET_S


def test_workload_of_chosen_layers_scales_with_reads_and_sweeps_and_refuses_unknown_names():
    model = load_model("digits-cnn")
    whole = workload(model)
    assert [s.layer for s in whole.sizes] == ["conv1", "conv2", "fc"] and whole.largest.layer == "fc"
    assert whole.couplers == sum(s.couplers for s in layer_sizes(model))
    fc = workload(model, ["fc"], num_reads=2, num_sweeps=500)
    assert fc.seconds == pytest.approx(workload(model, ["fc"]).seconds / 4)
    assert not whole.is_long and workload(model, num_sweeps=10**6).seconds > LONG_RUN_S
    assert workload(model, num_sweeps=10**6).is_long
    for bad in ("fconv1", ["conv9"], [1]):
        with pytest.raises(InvalidInputError):
            workload(model, bad)
    with pytest.raises(InvalidInputError, match="num_sweeps"):
        workload(model, num_sweeps=0)
    assert workload(model, []).largest is None and workload(model, []).seconds == 0


def test_the_vectorised_beta_range_goes_to_simulated_annealing_only_on_unembedded_problems():
    from core.solvers import get_sampler

    assert _anneals_as_given(SimulatedAnnealingSampler(), {})
    assert _anneals_as_given(RegistrySampler("sa", dense=True), {})  # the app's and CLI's path
    assert not _anneals_as_given(TabuSampler(), {})
    # QPU-like: the parameters act on the embedded problem, behind the registry or given directly
    assert not _anneals_as_given(RegistrySampler("mock-qpu-pegasus", dense=True), {})
    assert not _anneals_as_given(get_sampler("mock-qpu-zephyr"), {})
    # a range or schedule the user chose is kept
    assert not _anneals_as_given(SimulatedAnnealingSampler(), {"beta_range": [0.1, 1.0]})
    assert not _anneals_as_given(RegistrySampler("sa", params={"beta_range": [0.1, 1.0]}), {})
    assert not _anneals_as_given(SimulatedAnnealingSampler(), {"beta_schedule_type": "custom", "beta_schedule": [1.0]})


def test_a_beta_range_chosen_in_the_app_reaches_the_sampler(monkeypatch):
    import core.solvers
    from core.formulations.adaround import quantize_model_adaround
    from core.workspace import open_workspace

    seen = []
    real_solve = core.solvers.solve

    def spy(bqm, name, **kwargs):
        seen.append(kwargs.get("beta_range"))
        return real_solve(bqm, name, **kwargs)

    monkeypatch.setattr(core.solvers, "solve", spy)
    ws = open_workspace("digits-cnn")
    sampler = RegistrySampler("sa", params={"beta_range": [0.001, 0.002], "num_sweeps": 10})
    quantize_model_adaround(ws.model, ws.calibration, bits=3, sampler=sampler, num_reads=1, layers=["conv1"])
    assert seen and all(list(r) == [0.001, 0.002] for r in seen)
    seen.clear()
    quantize_model_adaround(ws.model, ws.calibration, bits=3, sampler=RegistrySampler("sa", params={"num_sweeps": 10}),
                            num_reads=1, layers=["conv1"])
    assert seen and all(r is not None and r[0] < r[1] for r in seen)  # the vectorised default


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.2, "under a second"), (40.4, "40 s"), (720, "12 min"), (3.5 * 3600, "3.5 h")]
)
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_the_fisher_cost_counts_every_channels_matrix_and_its_rows():
    from core.formulations.adaround import fisher_gram_bytes
    from core.methods.adaround import FISHER_FLOPS_PER_S, fisher_cost
    from core.models import load_model

    model = load_model("digits-cnn")
    images = torch.zeros(100, 1, 8, 8)
    cost = fisher_cost(model, images, ["conv2", "fc"])
    assert cost.bytes == fisher_gram_bytes(model.conv2) + fisher_gram_bytes(model.fc) == (32 * 145**2 + 10 * 513**2) * 8
    # conv2: 64 positions per image, fc: one row per image
    assert cost.seconds == pytest.approx(2 * (32 * 6400 * 145**2 + 10 * 100 * 513**2) / FISHER_FLOPS_PER_S)
    assert fisher_cost(model, images, []).bytes == 0
