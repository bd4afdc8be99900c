"""Figures of core.viz.methods: traces and values."""

from __future__ import annotations

import pytest

from core.errors import InvalidInputError
from core.viz.methods import baseline_comparison, kept_filters_map, layer_error_bars


def test_layer_error_bars_has_qubo_and_rtn_traces():
    rows = [{"layer": "conv1", "error_qubo": 0.01, "error_rtn": 0.02},
            {"layer": "fc", "error_qubo": 0.003, "error_rtn": 0.03}]
    fig = layer_error_bars(rows)
    assert [t.name for t in fig.data] == ["QUBO rounding", "round-to-nearest"]
    assert list(fig.data[0].x) == ["conv1", "fc"]
    assert list(fig.data[0].y) == [0.01, 0.003] and list(fig.data[1].y) == [0.02, 0.03]
    assert fig.data[0].customdata[1][0] == pytest.approx(0.1)
    assert fig.layout.yaxis.type == "linear"  # one decade: bars from zero compare honestly
    wide = layer_error_bars([{"layer": "conv1", "error_qubo": 1e-5, "error_rtn": 2e-5},
                             {"layer": "fc", "error_qubo": 0.003, "error_rtn": 0.03}])
    assert wide.layout.yaxis.type == "log" and "(log scale)" in wide.layout.title.text
    assert wide.layout.yaxis.dtick == 1  # decades only: minor digits crowded the axis
    with_relaxed = layer_error_bars([{**r, "error_relaxed": 0.004} for r in rows])
    assert [t.name for t in with_relaxed.data][-1] == "AdaRound (continuous relaxation)"
    assert list(with_relaxed.data[-1].y) == [0.004, 0.004]
    assert len(layer_error_bars([{**rows[0], "error_relaxed": 0.004}, rows[1]]).data) == 2  # all rows or none


def test_layer_error_bars_linear_axis_with_zero_and_empty_and_bad_rows():
    fig = layer_error_bars([{"layer": "a", "error_qubo": 0.0, "error_rtn": 0.0}])
    assert fig.layout.yaxis.type == "linear"
    assert len(layer_error_bars([]).data) == 0
    with pytest.raises(InvalidInputError):
        layer_error_bars([{"layer": "a"}])


def test_kept_filters_map_marks_kept_filters_per_method():
    kept = {"QUBO": {"c1": [0, 2], "c2": [1]}, "greedy Taylor": {"c1": [1, 2], "c2": [0]}}
    fig = kept_filters_map(kept, {"c1": 3, "c2": 2})
    (hm,) = fig.data
    assert list(hm.y) == ["QUBO", "greedy Taylor"]
    assert list(hm.x) == ["c1:0", "c1:1", "c1:2", "c2:0", "c2:1"]
    assert hm.z.tolist() == [[1, 0, 1, 0, 1], [0, 1, 1, 1, 0]]
    assert hm.text[0][0] == "c1: 2 of 3 kept"
    assert len(fig.layout.shapes) == 1  # layer separator
    with pytest.raises(InvalidInputError):
        kept_filters_map({"QUBO": {"c1": [5]}}, {"c1": 3})
    assert len(kept_filters_map({}, {}).data) == 0


def _adaround(bits, acc, rtn, scale="minmax", model="digits-cnn", paired=None):
    rtn_entry = {"label": "round-to-nearest", "accuracy": rtn} | ({"paired": paired} if paired else {})
    return {"method": "adaround", "model": model, "params": {"bits": bits, "scale": scale},
            "metrics": {"accuracy_after": acc}, "baselines": {"rtn": rtn_entry}}


def test_baseline_comparison_adaround_series_per_scale_sorted_by_bits():
    paired = {"qubo_only": 180, "baseline_only": 2, "n": 360, "p_value": 1e-50}
    runs = {3: _adaround(4, 0.99, 0.98), 1: _adaround(2, 0.97, 0.48, paired=paired), 2: _adaround(2, 0.986, 0.981, "mse"),
            9: {"method": "mixed-precision"}}  # other methods are left out
    fig = baseline_comparison(runs, "adaround")
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"digits-cnn, minmax: QUBO", "digits-cnn, minmax: round-to-nearest",
                            "digits-cnn, mse: QUBO", "digits-cnn, mse: round-to-nearest"}
    rtn = by_name["digits-cnn, minmax: round-to-nearest"]
    assert list(rtn.x) == [2.0, 4.0] and list(rtn.y) == pytest.approx([48.0, 98.0]) and list(rtn.text) == ["#1", "#3"]
    # the paired test shows on hover where the run stored one (run #1); older runs (#3) just have none
    assert list(rtn.customdata) == ["<br>QUBO model vs this: +180 / −2 images, p = 1e-50", ""]
    assert "%{customdata}" in rtn.hovertemplate and list(by_name["digits-cnn, minmax: QUBO"].customdata) == ["", ""]
    assert fig.layout.xaxis.title.text == "bits per weight"


def test_baseline_comparison_filter_pruning_uses_mean_sparsity_and_every_baseline():
    report = {"method": "filter-pruning", "model": "digits-cnn",
              "params": {"sparsity": {"conv1": 0.5, "conv2": 0.25}, "importance": "taylor"},
              "metrics": {"accuracy_after": 0.95},
              "baselines": {"greedy_taylor": {"label": "greedy Taylor", "accuracy": 0.92},
                            "l1_topk": {"label": "L1 top-K", "accuracy": 0.93},
                            "l1_qubo": {"label": "L1-QUBO", "accuracy": None}}}  # not computed: no point
    fig = baseline_comparison({5: report}, "filter-pruning")
    assert sorted(t.name for t in fig.data) == ["digits-cnn, taylor: QUBO", "digits-cnn: L1 top-K",
                                                 "digits-cnn: greedy Taylor"]
    assert len({t.marker.symbol for t in fig.data}) == 3
    assert all(list(t.x) == [0.375] for t in fig.data)


def test_baseline_comparison_empty_unknown_and_broken():
    assert len(baseline_comparison({}, "adaround").data) == 0
    with pytest.raises(InvalidInputError):
        baseline_comparison({}, "mixed-precision")
    with pytest.raises(InvalidInputError, match="#4"):
        baseline_comparison({4: {"method": "adaround", "params": {}}}, "adaround")
