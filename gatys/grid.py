"""The grid of a Gatys sweep: one RunSpec per combination of style image, optimizer, learning rate,
α:β weight ratio, content/style layer sets, backbone and pooling, and the parsers of its axes' values."""
from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fastst.errors import FaststError
from fastst.objectives.settings import default_layers

from .optimize import OPTIMIZERS

# Grid order, slowest-varying first: runs that differ only in the last varied axis are neighbours.
AXES = ("style", "optimizer", "lr", "weight_ratio", "content_layers", "style_layers", "backbone", "pooling")
ALL = "*"  # key of a learning-rate list that applies to every optimizer


@dataclass(frozen=True)
class RunSpec:
    """One point of the grid; layer sets of None mean the backbone's defaults, lr None the optimizer's
    default, style the label of the style image ("" when the sweep has one)."""

    optimizer: str
    content_weight: float
    style_weight: float
    content_layers: tuple[str, ...] | None
    style_layers: tuple[str, ...] | None
    backbone: str
    pooling: str = "max"
    lr: float | None = None
    style: str = ""

    def value(self, axis: str) -> str:
        """This run's setting on one axis, as a short label."""
        if axis == "weight_ratio":
            return f"{self.content_weight:g}:{self.style_weight:g}"
        if axis in ("content_layers", "style_layers"):
            layers = getattr(self, axis)
            return "+".join(layers) if layers else "default"
        if axis == "backbone":
            return Path(self.backbone).stem if os.sep in self.backbone or "." in self.backbone else self.backbone
        if axis == "lr":
            return "default" if self.lr is None else f"{self.lr:g}"
        return str(getattr(self, axis))

    def layers(self) -> tuple[list[str], list[str]]:
        """The content and style layers this run uses (explicit, else the backbone's defaults)."""
        c, s = default_layers(self.backbone)
        return list(self.content_layers or c), list(self.style_layers or s)


def parse_ratio(text: str) -> tuple[float, float]:
    """'1:1e3' -> (1.0, 1000.0)."""
    parts = text.split(":")
    try:
        a, b = (float(parts[0]), float(parts[1])) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        a = b = math.nan
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b < 0:
        raise FaststError(f"weight ratio '{text}' must be two non-negative numbers as ALPHA:BETA, e.g. 1:1e3")
    return a, b


def parse_lrs(tokens: Sequence[str]) -> dict[str, list[float]]:
    """Learning-rate lists per optimizer: ['adam=0.01,0.05', 'rmsprop=1e-3'] -> {'adam': [...], 'rmsprop': [...]};
    a list without a name ('0.01,0.1') applies to every optimizer not named (key ALL)."""
    lrs: dict[str, list[float]] = {}
    for token in (t for arg in tokens for t in arg.split()):
        name, _, values = token.rpartition("=")
        key = name.strip() if "=" in token else ALL
        if key != ALL and key not in OPTIMIZERS:
            raise FaststError(f"unknown optimizer '{key}' in learning rates '{token}'; "
                              f"choose one of {', '.join(OPTIMIZERS)}")
        if key in lrs:
            raise FaststError(f"learning rates '{token}': " + ("a second list for every optimizer" if key == ALL
                                                               else f"{key}'s rates are given twice"))
        if not values.strip():
            raise FaststError(f"learning rates '{token}': no rates after the name")
        rates: list[float] = []
        for text in values.split(","):
            try:
                rate = float(text)
            except ValueError:
                raise FaststError(f"learning rates '{token}': '{text}' is not a number") from None
            if not (rate > 0 and math.isfinite(rate)):
                raise FaststError(f"learning rates '{token}': {text} is not a positive finite rate")
            if rate in rates:
                raise FaststError(f"learning rates '{token}': {text} is given twice")
            rates.append(rate)
        lrs[key] = rates
    if not lrs:
        raise FaststError("no learning rates given")
    return lrs


def grid(optimizers: Sequence[str], weight_ratios: Sequence[tuple[float, float]],
         content_layer_sets: Sequence[Sequence[str] | None], style_layer_sets: Sequence[Sequence[str] | None],
         backbones: Sequence[str], poolings: Sequence[str] = ("max",),
         lrs: Mapping[str, Sequence[float]] | None = None, styles: Sequence[str] = ("",)) -> list[RunSpec]:
    """The full cross product in AXES order (style varies slowest); an optimizer's learning rates are
    lrs[name], else lrs[ALL], else its default."""
    for name in optimizers:
        if name not in OPTIMIZERS:
            raise FaststError(f"unknown optimizer '{name}'; choose one of {', '.join(OPTIMIZERS)}")
    lrs = dict(lrs or {})
    stray = [k for k in lrs if k != ALL and k not in optimizers]
    if stray:
        raise FaststError(f"learning rates given for {', '.join(stray)}, which is not among the optimizers "
                          f"({', '.join(optimizers)})")
    runs = []
    for style, opt in itertools.product(styles, optimizers):
        rates: Sequence[float | None] = lrs.get(opt, lrs.get(ALL)) or [None]
        for lr, (a, b), cl, sl, bb, pool in itertools.product(rates, weight_ratios, content_layer_sets,
                                                               style_layer_sets, backbones, poolings):
            runs.append(RunSpec(opt, a, b, tuple(cl) if cl else None, tuple(sl) if sl else None, bb, pool, lr, style))
    if not runs:
        raise FaststError("the sweep grid is empty")
    return runs


def varied_axes(runs: Sequence[RunSpec]) -> list[str]:
    """The axes with more than one value in the grid, in AXES order."""
    return [a for a in AXES if len({r.value(a) for r in runs}) > 1]


def run_name(index: int, spec: RunSpec) -> str:
    """A file-system-safe run name: index plus every setting."""
    raw = "_".join([f"{index:02d}"] + ([spec.style] if spec.style else []) + [spec.optimizer]
                   + ([f"lr{spec.lr:g}"] if spec.lr is not None else [])
                   + ["w" + spec.value("weight_ratio"), "c-" + spec.value("content_layers"),
                      "s-" + spec.value("style_layers"), spec.value("backbone")]
                   + (["avgpool"] if spec.pooling == "avg" else []))
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", raw)[:120]


def style_labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Short, distinct labels for the style images: their file stems (numbered where two agree);
    a single style gets "" (no style axis)."""
    if len(paths) == 1:
        return [""]
    stems = [re.sub(r"[^A-Za-z0-9_.+-]", "-", Path(p).stem)[:40] for p in paths]
    return [s if stems.count(s) == 1 else f"{s}-{i}" for i, s in enumerate(stems, 1)]
