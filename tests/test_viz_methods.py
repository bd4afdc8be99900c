"""Figures of core.viz.methods: traces and values."""

from __future__ import annotations

import pytest

from core.errors import InvalidInputError
from core.viz.methods import kept_filters_map, layer_error_bars


def test_layer_error_bars_has_qubo_and_rtn_traces():
    rows = [{"layer": "conv1", "error_qubo": 0.01, "error_rtn": 0.02},
            {"layer": "fc", "error_qubo": 0.003, "error_rtn": 0.03}]
    fig = layer_error_bars(rows)
    assert [t.name for t in fig.data] == ["QUBO rounding", "round-to-nearest"]
    assert list(fig.data[0].x) == ["conv1", "fc"]
    assert list(fig.data[0].y) == [0.01, 0.003] and list(fig.data[1].y) == [0.02, 0.03]
    assert fig.data[0].customdata[1][0] == pytest.approx(0.1)
    assert fig.layout.yaxis.type == "log"


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
