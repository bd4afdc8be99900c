"""Per-unit distortion estimates for compression options (DESIGN section 3, F1)."""

from core.sensitivity.measure import (
    METHODS,
    Sensitivity,
    cache_clear,
    cache_info,
    measure_sensitivity,
    model_hash,
)
from core.sensitivity.options import (
    DEFAULT_OPTIONS,
    DecisionUnit,
    Option,
    decision_units,
    option_label,
    option_weight_bits,
    parse_options,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "METHODS",
    "DecisionUnit",
    "Option",
    "Sensitivity",
    "cache_clear",
    "cache_info",
    "decision_units",
    "measure_sensitivity",
    "model_hash",
    "option_label",
    "option_weight_bits",
    "parse_options",
]
