"""Accuracy/loss, latency, size accounting (against an independent count) and
sparsity, plus the workspace evaluation report (issue 2, "Evaluation")."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from core.data import EvalData, digits_split
from core.errors import InvalidInputError
from core.evaluate import accuracy_and_loss, measure_latency, option_bits, size_bits, sparsity
from core.models import build_model, count_parameters, load_model
from core.workspace import CALIBRATION_SIZE, evaluate_report, open_workspace

# digits-cnn layer shapes written out by hand (DigitsCNN: 1->16 3x3, 16->32 3x3, 512->10)
CNN = {
    "conv1": (16 * 1 * 3 * 3, 16),
    "conv2": (32 * 16 * 3 * 3, 32),
    "fc": (10 * 32 * 4 * 4, 10),
}
CNN_PARAMS = sum(w + b for w, b in CNN.values())  # 9930


@pytest.fixture(scope="module")
def cnn():
    return load_model("digits-cnn")


# ----------------------------------------------------------------------------- accuracy and loss


@pytest.mark.parametrize("batch_size", [7, 512])
def test_accuracy_and_loss_match_a_manual_computation(cnn, batch_size):
    test = digits_split().test
    with torch.no_grad():
        logits = cnn(test.images)
    manual_acc = (logits.argmax(1) == test.labels).double().mean().item()
    manual_loss = nn.functional.cross_entropy(logits.double(), test.labels).item()
    quality = accuracy_and_loss(cnn, test, batch_size=batch_size)
    assert quality.n == 360
    assert quality.accuracy == pytest.approx(manual_acc, abs=1e-12)
    assert quality.loss == pytest.approx(manual_loss, rel=1e-5)


class _Fixed(nn.Module):
    """Returns (scores, aux): scores put log(3) more on class 0 than on the others."""

    def forward(self, x):
        scores = torch.zeros(x.shape[0], 4)
        scores[:, 0] = math.log(3.0)
        return scores, torch.zeros(1)


def test_accuracy_and_loss_on_a_known_answer_and_tuple_output():
    labels = torch.tensor([0, 0, 1, 2, 3, 0])
    data = EvalData("known", torch.zeros(6, 1, 2, 2), labels, 4)
    quality = accuracy_and_loss(_Fixed(), data)
    assert quality.accuracy == pytest.approx(3 / 6)
    # p(class 0) = 3/6, p(other) = 1/6
    assert quality.loss == pytest.approx((3 * math.log(2) + 3 * math.log(6)) / 6, rel=1e-6)


# ----------------------------------------------------------------------------- latency


def test_measure_latency_positive_medians_and_restores_threads(cnn):
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        latency = measure_latency(cnn, (1, 8, 8), batch_sizes=(1, 64), repeats=3, warmup=1, threads=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert set(latency.ms_per_image) == {1, 64}
    assert all(v > 0 and math.isfinite(v) for v in latency.ms_per_image.values())
    assert latency.threads == 1 and latency.repeats == 3
    row = latency.as_dict()
    assert set(row["ms_per_image"]) == {"1", "64"} and row["threads"] == 1


def test_measure_latency_restores_threads_when_the_model_fails():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    previous = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="boom"):
        measure_latency(Broken(), (1, 2, 2), threads=previous + 1)
    assert torch.get_num_threads() == previous


@pytest.mark.parametrize("kwargs", [dict(repeats=0), dict(warmup=-1), dict(threads=0)])
def test_measure_latency_rejects_bad_arguments(cnn, kwargs):
    with pytest.raises(ValueError):
        measure_latency(cnn, (1, 8, 8), **kwargs)


# ----------------------------------------------------------------------------- size accounting


def _hand_size(assignment: dict[str, str | int]) -> int:
    total = 32 * CNN_PARAMS
    for name, option in assignment.items():
        weights, bias = CNN[name]
        total -= 32 * (weights + bias)
        if option == "prune":
            continue
        bits = 32 if option == "keep" else int(option)
        scales = 32 * bias if bits < 32 else 0  # one fp32 scale per output channel (= one bias each here)
        total += bits * weights + 32 * bias + scales
    return total


def test_hand_count_matches_the_model(cnn):
    assert count_parameters(cnn) == CNN_PARAMS == 9930
    assert size_bits(cnn) == 32 * 9930 == 317_760


@pytest.mark.parametrize(
    "assignment",
    [
        {},
        {"conv1": 4},
        {"conv1": "4"},
        {"conv2": "prune"},
        {"fc": "keep"},
        {"conv1": 2, "conv2": 8, "fc": 4},
        {"conv1": "prune", "conv2": "prune", "fc": "prune"},
        {"conv1": 1, "conv2": "keep", "fc": 32},
    ],
    ids=repr,
)
def test_size_bits_matches_an_independent_count(cnn, assignment):
    assert size_bits(cnn, assignment) == _hand_size(assignment)


def test_size_bits_spot_values(cnn):
    full = 32 * CNN_PARAMS
    assert size_bits(cnn, {"conv1": 4}) == full - 32 * 160 + 144 * 4 + 16 * 32 + 16 * 32  # bias + scales
    assert full - size_bits(cnn, {"conv2": "prune"}) == 32 * (4608 + 32)  # pruned unit -> 0 bits
    assert size_bits(cnn, {"fc": "keep"}) == full  # keep == 32 * params


def test_size_bits_counts_non_compressible_params_and_biasless_layers():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 2))
    bn = 2 * 8  # weight + bias (running stats are buffers, not parameters)
    assert size_bits(model) == 32 * (8 * 3 * 9 + bn + 8 * 2 + 2)
    assert size_bits(model, {"0": 3}) == 3 * 8 * 3 * 9 + 32 * 8 + 32 * (bn + 8 * 2 + 2)  # 8 channel scales
    assert size_bits(model, {"0": "prune", "3": "prune"}) == 32 * bn


def test_size_bits_of_a_torchvision_model_matches_its_module_shapes():
    model = build_model("mobilenet_v3_small")
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assignment = {n: 4 for n, _ in convs}
    saved = sum(32 * m.weight.numel() - 4 * m.weight.numel() - 32 * m.out_channels for _, m in convs)
    assert size_bits(model, assignment) == 32 * count_parameters(model) - saved


def test_size_bits_rejects_unknown_units_and_bad_options(cnn):
    with pytest.raises(KeyError, match="act"):
        size_bits(cnn, {"act": 4})
    with pytest.raises(KeyError):
        size_bits(cnn, {"conv3": 4})
    for bad in (0, 33, "sixteen"):
        with pytest.raises(ValueError):
            size_bits(cnn, {"conv1": bad})


@pytest.mark.parametrize("option, bits", [("prune", 0), ("keep", 32), (8, 8), ("2", 2)])
def test_option_bits(option, bits):
    assert option_bits(option) == bits


def test_sparsity_of_a_model_with_a_zeroed_layer(cnn):
    model = copy.deepcopy(cnn)
    assert sparsity(model) == 0.0
    with torch.no_grad():
        model.conv2.weight.zero_()
        model.conv2.bias.zero_()  # biases are not counted
        model.fc.weight[:, :256] = 0
    expected = (4608 + 10 * 256) / (144 + 4608 + 5120)
    assert sparsity(model) == pytest.approx(expected, abs=1e-12)
    assert sparsity(nn.Sequential(nn.ReLU())) == 0.0


# ----------------------------------------------------------------------------- workspace


def test_evaluate_report_of_the_digits_cnn_workspace(digits_cnn_workspace):
    ws = digits_cnn_workspace
    key = ws.cache_key()
    report = evaluate_report(ws, latency_repeats=2)
    assert report["model"] == "digits-cnn" and report["data"] == "digits-test" and report["num_examples"] == 360
    assert report["accuracy"] >= 0.95 and 0 < report["loss"] < 0.5
    assert report["params"] == CNN_PARAMS and report["size_bits"] == 32 * CNN_PARAMS
    assert [u["name"] for u in report["units"]] == ["conv1", "conv2", "fc"]
    assert set(report["latency"]["ms_per_image"]) == {"1", "64"}
    assert report["latency"]["threads"] == 1
    assert ws.cache_key() == key  # evaluation does not change the model


def test_digits_workspace_calibrates_on_training_images_never_on_scored_ones(digits_cnn_workspace):
    ws, split = digits_cnn_workspace, digits_split()
    assert len(ws.calibration) == CALIBRATION_SIZE and ws.data.name == split.test.name

    def rows(images):
        return {tuple(x.flatten().tolist()) for x in images}

    train, calib = rows(split.train.images), rows(ws.calibration.images)
    assert calib <= train and not calib & rows(split.test.images) and not calib & rows(split.val.images)
    # the run seed varies the sampler, not the problem
    assert open_workspace("digits-cnn", seed=3).calibration.content_hash() == ws.calibration.content_hash()


def test_open_workspace_adapts_digits_to_a_torchvision_input():
    ws = open_workspace("mobilenet_v3_small", data="digits")
    assert ws.input_shape == (3, 32, 32) and len(ws.data) == 360
    assert ws.calibration.input_shape == (3, 32, 32)
    default = open_workspace("mobilenet_v3_small")
    assert default.data.name == "random" and default.input_shape == (3, 32, 32)


def test_open_workspace_refuses_unknown_data_and_model():
    with pytest.raises(InvalidInputError, match="Unknown data source"):
        open_workspace("digits-cnn", data="imagenet")
    with pytest.raises(InvalidInputError, match="Unknown model"):
        open_workspace("lenet")
