"""Strength and stroke size as row weights of the network's style table.

A model's rows are styles, optionally an *identity* row (trained to reproduce the photo) and several
rows of one painting trained at different style-image sizes (a *group*). Both controls only choose the
weights that mix the conditional instance norms' scale and shift (Dumoulin et al. 2017, "A learned
representation for artistic style": interpolating those rows is smooth):

- stroke x in [0, 1]: within a group, sorted by style size, 0 is the smallest-size row and 1 the largest,
  piecewise linear in between;
- strength s in [0, MAX_STRENGTH]: each style row's weight moves along a path from the identity row
  (s = 0) to the row itself (s = 1), through the row's *strength rows* where it has them (rows of
  kind "strength", same group and style size, trained at a lower style weight, placed at their own
  strength s_k): piecewise linear between neighbouring knots. With no strength rows the path is
  w = s·e_row + (1 − s)·e_identity; above 1 it is that line (a negative identity weight). A model
  without an identity row cannot do this: the caller blends pixels instead.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import FaststError

MAX_STRENGTH = 1.5  # mild extrapolation beyond the trained style row
STYLE = "style"  # the kinds of row a style table holds: a painting,
IDENTITY = "identity"  # the row that reproduces the photo,
STRENGTH = "strength"  # and a row between the identity row and a style row
KINDS = (STYLE, IDENTITY, STRENGTH)


@dataclass(frozen=True)
class Row:
    """What the controls need to know of a style-table row (modelfile.StyleInfo has these fields)."""

    name: str
    kind: str = STYLE
    group: str | None = None
    style_size: int | None = None
    strength: float | None = None  # a strength row's place on its style's path, in (0, 1)


@dataclass(frozen=True)
class Mix:
    """The outcome of the controls: raw row weights for the network, and the fraction of the network's
    output to keep when the strength must fall back to a pixel blend with the photo (1.0: none)."""

    weights: list[float]
    pixel_blend: float = 1.0


def group_of(row: Row) -> str:
    """The user-facing style a row belongs to: its group, or its own name."""
    return row.group or row.name


def identity_index(rows: Sequence[Row]) -> int | None:
    """Index of the identity row, or None."""
    found = [i for i, r in enumerate(rows) if r.kind == IDENTITY]
    return found[0] if found else None


def groups(rows: Sequence[Row]) -> dict[str, list[int]]:
    """User-facing styles in table order, each with its rows sorted by style size (unknown sizes first,
    in table order). The identity row and strength rows belong to no group."""
    out: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r.kind not in (IDENTITY, STRENGTH):
            out.setdefault(group_of(r), []).append(i)
    for name, members in out.items():
        out[name] = sorted(members, key=lambda i: (rows[i].style_size or 0, i))
    return out


def check_strength(strength: float) -> float:
    """`strength` as a float, or FaststError outside [0, MAX_STRENGTH] (NaN included)."""
    s = float(strength)
    if not (0.0 <= s <= MAX_STRENGTH):
        raise FaststError(f"strength must be in [0, {MAX_STRENGTH:g}], got {strength}")
    return s


def check_stroke(stroke: float) -> float:
    """`stroke` as a float, or FaststError outside [0, 1] (NaN included)."""
    x = float(stroke)
    if not (0.0 <= x <= 1.0):
        raise FaststError(f"stroke must be in [0, 1], got {stroke}")
    return x


def default_stroke(rows: Sequence[Row], members: Sequence[int]) -> float:
    """Where a group sits with no stroke given: at its row named like the group (the row a model had
    before scale rows were added), else at its smallest size."""
    for pos, i in enumerate(members):
        if rows[i].name == group_of(rows[i]) and len(members) > 1:
            return pos / (len(members) - 1)
    return 0.0


def stroke_weights(rows: Sequence[Row], members: Sequence[int], stroke: float | None) -> dict[int, float]:
    """Split one group's weight between its two rows that bracket `stroke` (piecewise linear over the
    rows sorted by style size, equally spaced in [0, 1])."""
    if len(members) == 1:
        return {members[0]: 1.0}
    x = default_stroke(rows, members) if stroke is None else check_stroke(stroke)
    t = x * (len(members) - 1)
    lo = min(math.floor(t), len(members) - 2)
    frac = t - lo
    out = {members[lo]: 1.0 - frac, members[lo + 1]: frac}
    return {i: w for i, w in out.items() if w != 0.0} or {members[lo]: 1.0}


def resolve(rows: Sequence[Row], name: str | int) -> tuple[str, int | None]:
    """A user's style name: a group (returns (group, None)) or one row (returns (group, row index));
    indices, and digit strings that name no group or row, address rows."""
    names = [r.name for r in rows]
    if isinstance(name, str):
        if name in groups(rows):
            return name, None
        if name in names:
            i = names.index(name)
            return group_of(rows[i]), i
    if isinstance(name, int) or (isinstance(name, str) and name.isdecimal()):
        i = int(name)
        if 0 <= i < len(rows):
            return group_of(rows[i]), i
    choices = list(groups(rows)) + ([IDENTITY] if identity_index(rows) is not None else [])
    extra = f", or a row's name or index 0-{len(rows) - 1} (fastst styles lists them)" if len(rows) > len(choices) else ""
    raise FaststError(f"unknown style '{name}'; styles are: {', '.join(choices)}{extra}")


def mix(rows: Sequence[Row], blend: Mapping[str | int, float], strength: float = 1.0,
        stroke: float | None = None) -> Mix:
    """Row weights for a blend {style: weight} (groups or rows, weights normalised to sum 1) at a stroke
    and a strength. A group's weight is split between its scale rows by the stroke; a named row takes
    its weight itself. Without an identity row, strength < 1 comes back as a pixel blend."""
    s = check_strength(strength)
    if stroke is not None:
        check_stroke(stroke)
    total = sum(float(w) for w in blend.values())
    if not blend or any(not (float(w) >= 0) or math.isinf(float(w)) for w in blend.values()) or total <= 0:
        raise FaststError("style weights must be non-negative, finite and not all zero")
    members = groups(rows)
    weights = [0.0] * len(rows)
    for name, w in blend.items():
        group, row = resolve(rows, name)
        share = {row: 1.0} if row is not None else stroke_weights(rows, members[group], stroke)
        for i, part in share.items():
            weights[i] += float(w) / total * part
    ident = identity_index(rows)
    if s == 1.0:
        return Mix(weights)
    if ident is None:
        if s > 1.0:
            raise FaststError(f"strength above 1 needs a model with an identity row; this one has none (got {s:g})")
        return Mix(weights, pixel_blend=s)
    out = [0.0] * len(rows)
    for row, w in enumerate(weights):
        if w:
            for i, part in strength_path(rows, row, ident, s).items():
                out[i] += w * part
    return Mix(out)


def leads_to(step: Row, style: Row) -> bool:
    """Whether `step` is a strength row on `style`'s path: a style row of the same group and style size."""
    return (step.kind == STRENGTH and style.kind == "style" and group_of(step) == group_of(style)
            and step.style_size == style.style_size)


def strength_knots(rows: Sequence[Row], row: int) -> list[tuple[float, int]]:
    """(strength, index) of style row `row`'s strength rows, sorted."""
    return sorted((float(x.strength), i) for i, x in enumerate(rows) if x.strength is not None and leads_to(x, rows[row]))


def strength_path(rows: Sequence[Row], row: int, ident: int, s: float) -> dict[int, float]:
    """Row weights (summing to 1) of one row at strength s: piecewise linear over the knots identity (0),
    the row's strength rows (their s_k) and the row itself (1); above 1 the line from identity to row."""
    if row == ident:
        return {ident: 1.0}
    if s >= 1.0:
        return {row: s, ident: 1.0 - s}
    knots = [(0.0, ident), *strength_knots(rows, row), (1.0, row)]
    s0, i0, s1, i1 = next((a, i, b, j) for (a, i), (b, j) in zip(knots, knots[1:]) if s <= b and b > a)
    f = (s - s0) / (s1 - s0)
    return {i0: 1.0 - f, i1: f}
