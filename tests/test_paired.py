"""The paired accuracy test (exact McNemar) and per-example correctness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from core.data.dataset import EvalData
from core.errors import InvalidInputError
from core.evaluate import accuracy_and_loss, paired_accuracy
from core.evaluate.paired import paired_caption, paired_summary


def _binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p of a fair-coin split at least as uneven as min(k, n - k), by counting."""
    low = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(low + 1)) / 2**n
    return min(1.0, 2 * tail)


def test_known_values():
    a = np.array([True] * 10 + [False] * 5)
    b = np.zeros(15, dtype=bool)
    r = paired_accuracy(a, b)
    assert (r.only_a, r.only_b, r.n) == (10, 0, 15)
    assert r.p_value == pytest.approx(2 * 0.5**10) and r.significant
    # one image apart is never told apart
    one = paired_accuracy(np.array([True, True, False]), np.array([True, False, False]))
    assert (one.only_a, one.only_b, one.p_value, one.significant) == (1, 0, 1.0, False)
    # agreeing models: nothing to test
    same = paired_accuracy(a, a)
    assert (same.only_a, same.only_b, same.p_value) == (0, 0, 1.0)


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_p_value_is_the_exact_binomial_tail_and_symmetric(pairs):
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    r, swapped = paired_accuracy(a, b), paired_accuracy(b, a)
    assert (r.only_a, r.only_b) == (swapped.only_b, swapped.only_a)
    assert r.p_value == pytest.approx(swapped.p_value)
    assert 0.0 < r.p_value <= 1.0
    n = r.only_a + r.only_b
    assert r.p_value == pytest.approx(1.0 if n == 0 else _binomial_two_sided(r.only_a, n))
    # the accuracy difference is exactly the discordant split
    assert r.only_a - r.only_b == int(a.sum()) - int(b.sum())


def test_bad_input_is_refused_plainly():
    with pytest.raises(InvalidInputError, match="same length"):
        paired_accuracy(np.array([True, False]), np.array([True]))
    with pytest.raises(InvalidInputError, match="True .correct. or False"):
        paired_accuracy(np.array([1, 0]), np.array([0, 1]))


def test_models_on_the_same_data():
    torch.manual_seed(0)
    data = EvalData(name="random", images=torch.randn(50, 4), labels=torch.randint(0, 3, (50,)), num_classes=3)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    hits = accuracy_and_loss(a, data, batch_size=7).correct  # batches must line up with the examples
    assert hits.dtype == bool and hits.shape == (50,)
    assert hits.mean() == pytest.approx(accuracy_and_loss(a, data).accuracy)
    r = paired_accuracy(hits, accuracy_and_loss(b, data).correct)
    assert r.only_a - r.only_b == round(50 * (accuracy_and_loss(a, data).accuracy - accuracy_and_loss(b, data).accuracy))
    assert paired_accuracy(hits, accuracy_and_loss(a, data).correct).p_value == 1.0
    quality = accuracy_and_loss(a, data, batch_size=16)  # the same pass gives the per-example results
    assert np.array_equal(quality.correct, hits) and quality.accuracy == hits.mean()


def test_summary_of_a_report_field():
    d = paired_accuracy(np.array([True] * 3 + [False]), np.array([False] * 3 + [True])).as_dict("qubo", "baseline")
    assert set(d) == {"qubo_only", "baseline_only", "n", "p_value", "test"}
    assert paired_summary(d) == "+3 / \u22121 images, p = 0.62"
    assert paired_summary(None) is None and paired_summary({}) is None


def test_caption_names_the_baselines_within_and_beyond_chance():
    baselines = {"rtn": {"label": "round-to-nearest", "paired": {"p_value": 0.003}},
                 "greedy": {"label": "greedy Taylor", "paired": {"p_value": 0.5}},
                 "l1": {"label": "L1-QUBO", "paired": {"p_value": 1.0}},
                 "old": {"label": "an older run's baseline"}}  # saved before reports had the test: left out
    caption = paired_caption(baselines, 360)
    assert caption.startswith("Paired test on the same 360 examples: the QUBO model's accuracy differs from "
                              "greedy Taylor and L1-QUBO by no more than chance (p ≥ 0.05); and from "
                              "round-to-nearest by more than chance (p < 0.05).")
    assert "older" not in caption and paired_caption({"old": {}}, 360) == ""
