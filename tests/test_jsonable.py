"""core.jsonable: one conversion to strict JSON for reports, the CLI and the store."""

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from core.jsonable import to_jsonable


def test_numpy_containers_and_odd_keys_become_plain_json() -> None:
    value = {
        "a": (1, np.int64(2)),
        "b": {3, 1},
        "c": np.float32(0.5),
        "d": np.arange(3).reshape(1, 3),
        7: "seven",
        "when": dt.date(2026, 11, 23),
        "path": Path("x/y"),
        "flag": np.bool_(True),
    }
    assert to_jsonable(value) == {
        "a": [1, 2], "b": [1, 3], "c": 0.5, "d": [[0, 1, 2]], "7": "seven",
        "when": "2026-11-23", "path": "x/y", "flag": True,
    }


def test_non_finite_numbers_are_strict_json() -> None:
    out = to_jsonable([math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf")])
    assert out == [None, "inf", "-inf", None, "inf"]
    json.dumps(out, allow_nan=False)


def test_drop_key_removes_keys_at_every_depth_and_leaves_the_input_alone() -> None:
    value = {"token": "s3cret", "params": {"Api_Token": "x", "keep": [{"token": 1, "ok": 2}]}}
    out = to_jsonable(value, drop_key=lambda k: "token" in str(k).lower())
    assert out == {"params": {"keep": [{"ok": 2}]}}
    assert value["token"] == "s3cret"


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
    st.floats(width=32).map(np.float32), st.integers(-5, 5).map(np.int64),
)
nested = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=4),
    ),
    max_leaves=20,
)


@given(nested)
def test_anything_built_from_numbers_and_containers_dumps_as_strict_json(value) -> None:
    out = to_jsonable(value)
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert to_jsonable(out) == out  # converting twice changes nothing
