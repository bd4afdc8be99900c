"""One conversion of engine results to plain JSON values, used by run reports,
the command line and the run store alike."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def to_jsonable(value: Any, *, drop_key: Callable[[Any], bool] | None = None) -> Any:
    """A deep copy of ``value`` made only of dicts, lists, strings, numbers, booleans and None.

    Mapping keys become strings (keys for which ``drop_key`` is true are left
    out); tuples, numpy arrays and sets become lists (sets sorted, so output is
    stable); numpy scalars become Python numbers; dates become ISO strings.
    Strict JSON has no NaN or infinity, so NaN becomes None and infinities the
    strings "inf" / "-inf". Anything else becomes its ``str``.
    """

    def convert(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): convert(x) for k, x in v.items() if drop_key is None or not drop_key(k)}
        if isinstance(v, np.ndarray):
            return convert(v.tolist())
        if isinstance(v, (set, frozenset)):
            return [convert(x) for x in sorted(v, key=repr)]
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, np.generic):
            return convert(v.item())
        if isinstance(v, float) and not math.isfinite(v):
            return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        if v is None or isinstance(v, (str, int, float, bool)):
            return v
        if isinstance(v, (dt.datetime, dt.date)):
            return v.isoformat()
        return str(v)

    return convert(value)
