"""Compression options, decision units and their size accounting.

An *option* is what can be done to one decision unit:

* ``"prune"``: the unit's weights and bias are zeroed and stored as nothing
  (0 bits, 0 kept parameters);
* an integer ``b`` in 1..8: weights fake-quantized to ``b`` bits (symmetric,
  one scale per output channel), bias kept in fp32
  (``b * weight_params + 32 * (bias_params + out_channels)`` bits: the
  per-channel fp32 scales are stored too);
* ``"keep"``: left in fp32 (``32 * params`` bits).

A *decision unit* is a Conv2d/Linear layer, or in fine-grained mode one of
``G`` contiguous groups of a layer's output channels. Its name is the layer
name (``"conv2"``) or the layer name followed by the group,
``"conv2[g2/4]"`` (group 2 of 4, counting from 1).

The size of a model under a decision is the sum of its units' option costs
plus 32 bits for every parameter outside the units (BatchNorm, ...); units
without a decision count as ``"keep"``. This is the accounting the whole app
uses (see ``core.evaluate.size_bits``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from torch import nn

from core.errors import InvalidInputError
from core.evaluate.metrics import option_bits, stored_bits
from core.models.units import compressible_units

Option = str | int
"""``"prune"``, an int number of bits (1..8) or ``"keep"``."""

FP32_BITS = 32
MAX_BITS = 8
DEFAULT_OPTIONS: tuple[Option, ...] = ("prune", 2, 4, 8, "keep")

_GROUP_RE = re.compile(r"^(?P<layer>.+)\[g(?P<index>\d+)/(?P<total>\d+)\]$")


# ----------------------------------------------------------------------------- options


def _parse_one(token: Option) -> Option:
    if isinstance(token, bool):
        raise InvalidInputError(f"{token!r} is not a compression option; use prune, 1..{MAX_BITS} or keep.")
    if isinstance(token, int):
        bits = token
    else:
        text = str(token).strip().lower()
        if text in ("prune", "keep"):
            return text
        if text in ("fp32", "32"):
            return "keep"
        text = text.removesuffix("bits").removesuffix("bit").removesuffix("b")
        try:
            bits = int(text)
        except ValueError:
            raise InvalidInputError(
                f"{token!r} is not a compression option; use prune, a number of bits from 1 to {MAX_BITS}, or keep."
            ) from None
    if not 1 <= bits <= MAX_BITS:
        raise InvalidInputError(f"A bit width must be between 1 and {MAX_BITS}, not {bits}.")
    return bits


def parse_options(options: str | Iterable[Option] | None = None) -> tuple[Option, ...]:
    """Parse a user option set such as ``"prune,2,4,8,keep"``.

    Accepts a comma-separated string or an iterable of ``"prune"``, ints and
    ``"keep"`` (``"4b"``, ``"4bits"`` and ``"fp32"`` are accepted spellings).
    Returns a duplicate-free tuple in canonical order: prune, bits ascending, keep.
    """
    if options is None:
        return DEFAULT_OPTIONS
    tokens = [t for t in options.split(",") if t.strip()] if isinstance(options, str) else list(options)
    if not tokens:
        raise InvalidInputError("Choose at least one compression option (prune, 1..8 bits, keep).")
    parsed = {_parse_one(t) for t in tokens}
    ordered: list[Option] = ["prune"] if "prune" in parsed else []
    ordered += sorted(o for o in parsed if isinstance(o, int))
    ordered += ["keep"] if "keep" in parsed else []
    return tuple(ordered)


def option_label(option: Option) -> str:
    """The string used in variable labels and tables: ``"prune"``, ``"4"``, ``"keep"``."""
    return str(option)


def option_from_label(label: str) -> Option:
    return label if label in ("prune", "keep") else int(label)


def option_weight_bits(option: Option) -> int:
    """Bits per stored weight: 0 for prune, b for b bits, 32 for keep."""
    return option_bits(option)


# ----------------------------------------------------------------------------- units


@dataclass(frozen=True)
class DecisionUnit:
    """One thing a decision is made about: a layer or a group of its output channels.

    ``start``/``stop`` delimit the output channels (rows of the weight) the
    unit covers; for a whole layer they are 0 and ``out_channels``.
    """

    name: str
    layer: str
    start: int
    stop: int
    layer_out_channels: int
    weight_params: int
    bias_params: int
    safe_to_prune: bool
    reason: str = ""

    @property
    def params(self) -> int:
        return self.weight_params + self.bias_params

    @property
    def out_channels(self) -> int:
        return self.stop - self.start

    @property
    def whole_layer(self) -> bool:
        return self.start == 0 and self.stop == self.layer_out_channels

    def cost_bits(self, option: Option) -> int:
        """Storage of this unit under ``option`` (see module docstring)."""
        return stored_bits(option_weight_bits(option), self.weight_params, self.bias_params, self.out_channels)

    def kept_params(self, option: Option) -> int:
        """Parameters left nonzero (counted as stored) under ``option``."""
        return 0 if option == "prune" else self.params

    def allowed(self, options: Sequence[Option]) -> tuple[Option, ...]:
        """``options`` minus ``"prune"`` when the unit is not safe to prune."""
        return tuple(o for o in options if o != "prune" or self.safe_to_prune)

    def as_dict(self) -> dict:
        row = asdict(self)
        row["params"] = self.params
        return row


def group_bounds(out_channels: int, groups: int) -> list[tuple[int, int]]:
    """``min(groups, out_channels)`` contiguous, near-equal channel ranges."""
    g = max(1, min(groups, out_channels))
    base, extra = divmod(out_channels, g)
    bounds, start = [], 0
    for i in range(g):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def check_groups(groups: int) -> int:
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise InvalidInputError(f"groups must be a whole number >= 1, not {groups!r}.")
    return groups


def decision_units(model: nn.Module, groups: int = 1) -> list[DecisionUnit]:
    """The model's decision units in definition order.

    ``groups=1``: one unit per Conv2d/Linear layer, named like the layer.
    ``groups=G>1``: each layer split into ``min(G, out_channels)`` contiguous
    groups of output channels named ``"layer[gi/G']"`` (i from 1).
    """
    check_groups(groups)
    units: list[DecisionUnit] = []
    for unit in compressible_units(model):
        module = model.get_submodule(unit.name)
        per_channel = unit.weight_params // unit.out_channels
        has_bias = getattr(module, "bias", None) is not None
        bounds = group_bounds(unit.out_channels, groups)
        for i, (start, stop) in enumerate(bounds, start=1):
            name = unit.name if len(bounds) == 1 else f"{unit.name}[g{i}/{len(bounds)}]"
            n = stop - start
            units.append(
                DecisionUnit(
                    name=name,
                    layer=unit.name,
                    start=start,
                    stop=stop,
                    layer_out_channels=unit.out_channels,
                    weight_params=per_channel * n,
                    bias_params=n if has_bias else 0,
                    safe_to_prune=unit.safe_to_prune,
                    reason=unit.reason,
                )
            )
    return units


def resolve_units(model: nn.Module, names: Iterable[str]) -> dict[str, DecisionUnit]:
    """Map unit names (``"conv2"`` or ``"conv2[g1/4]"``) of ``model`` to units."""
    by_groups: dict[int, dict[str, DecisionUnit]] = {}

    def listing(groups: int) -> dict[str, DecisionUnit]:
        if groups not in by_groups:
            by_groups[groups] = {u.name: u for u in decision_units(model, groups)}
        return by_groups[groups]

    resolved: dict[str, DecisionUnit] = {}
    for name in names:
        match = _GROUP_RE.match(name)
        found = listing(1).get(name)
        if found is None and match is not None:
            found = listing(int(match["total"])).get(name)
        if found is None:
            raise InvalidInputError(f"{name!r} is not a Conv2d/Linear layer (or channel group) of this model.")
        resolved[name] = found
    return resolved
