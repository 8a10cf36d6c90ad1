"""Experiment grids for the Gatys baseline: every combination of optimizers, α:β weight ratios,
content/style layer sets, backbones and loss-network pooling, each run on the same evaluation budget, with one CSV per
run, a summary scored by one fixed objective, loss-curve plots per varied axis and a contact sheet."""
from __future__ import annotations

import csv
import itertools
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fastst.errors import FaststError
from fastst.images import atomic_path, load_image, save_image
from fastst.objectives.settings import default_layers
from fastst.sheets import contact_sheet

from . import optimize as go

AXES = ("optimizer", "weight_ratio", "content_layers", "style_layers", "backbone", "pooling")
SUMMARY_COLUMNS = ("run", "optimizer", "lr", "content_weight", "style_weight", "tv_weight", "normalize_gradients",
                   "content_layers",
                   "style_layers", "backbone", "pooling", "evaluations", "seconds", "passes_per_s",
                   "content", "style", "tv", "total", "objective_total", "image", "log")


@dataclass(frozen=True)
class RunSpec:
    """One point of the grid; layer sets of None mean the backbone's defaults."""

    optimizer: str
    content_weight: float
    style_weight: float
    content_layers: tuple[str, ...] | None
    style_layers: tuple[str, ...] | None
    backbone: str
    pooling: str = "max"

    def value(self, axis: str) -> str:
        """This run's setting on one axis, as a short label."""
        if axis == "weight_ratio":
            return f"{self.content_weight:g}:{self.style_weight:g}"
        if axis in ("content_layers", "style_layers"):
            layers = getattr(self, axis)
            return "+".join(layers) if layers else "default"
        if axis == "backbone":
            return Path(self.backbone).stem if os.sep in self.backbone or "." in self.backbone else self.backbone
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


def grid(optimizers: Sequence[str], weight_ratios: Sequence[tuple[float, float]],
         content_layer_sets: Sequence[Sequence[str] | None], style_layer_sets: Sequence[Sequence[str] | None],
         backbones: Sequence[str], poolings: Sequence[str] = ("max",)) -> list[RunSpec]:
    """The full cross product, in a stable order (optimizer varies slowest)."""
    for name in optimizers:
        if name not in go.OPTIMIZERS:
            raise FaststError(f"unknown optimizer '{name}'; choose one of {', '.join(go.OPTIMIZERS)}")
    runs = []
    for opt, (a, b), cl, sl, bb, pool in itertools.product(optimizers, weight_ratios, content_layer_sets,
                                                            style_layer_sets, backbones, poolings):
        runs.append(RunSpec(opt, a, b, tuple(cl) if cl else None, tuple(sl) if sl else None, bb, pool))
    if not runs:
        raise FaststError("the sweep grid is empty")
    return runs


def varied_axes(runs: Sequence[RunSpec]) -> list[str]:
    """The axes with more than one value in the grid."""
    return [a for a in AXES if len({r.value(a) for r in runs}) > 1]


def run_name(index: int, spec: RunSpec) -> str:
    """A file-system-safe run name: index plus every setting."""
    raw = "_".join([f"{index:02d}", spec.optimizer, "w" + spec.value("weight_ratio"), "c-" + spec.value("content_layers"),
                    "s-" + spec.value("style_layers"), spec.value("backbone")]
                   + (["avgpool"] if spec.pooling == "avg" else []))
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", raw)[:120]


def run_sweep(content: str | os.PathLike, style: str | os.PathLike, out_dir: str | os.PathLike,
          optimizers: Sequence[str] = ("lbfgs",),
          weight_ratios: Sequence[tuple[float, float]] = ((go.DEFAULT_CONTENT_WEIGHT, go.DEFAULT_STYLE_WEIGHT),),
          content_layer_sets: Sequence[Sequence[str] | None] = (None,),
          style_layer_sets: Sequence[Sequence[str] | None] = (None,),
          backbones: Sequence[str] = (go.DEFAULT_BACKBONE,), poolings: Sequence[str] = ("max",),
          match_weights: bool = False, progress: bool = False, **stylize_options: Any) -> list[dict[str, Any]]:
    """Run the grid and write runs/<name>.csv|.png, summary.csv, plot_<axis>.png and contact_sheet.png.

    stylize_options go to gatys.optimize.stylize (iterations, size, tv_weight, lr, init, seed, device…).
    Returns the summary rows; the summary's losses come from gatys.optimize.score (fixed scorer).
    match_weights multiplies each run's β and tv weight by its backbone's matched_weights factors
    (relative to vgg16-caffe), so that one α:β pair means the same balance on every backbone.
    """
    normalized = bool(stylize_options.get("normalize_gradients", False))
    if match_weights and normalized:
        raise FaststError("--match-weights has nothing to match with --normalize-gradients: each layer's gradient "
                          "is normalised whatever the backbone's feature scale")
    runs = grid(optimizers, weight_ratios, content_layer_sets, style_layer_sets, backbones, poolings or ("max",))
    content_img = load_image(content)
    style_img = load_image(style)
    device = go.resolve_device(stylize_options.get("device", "auto"))
    for spec in runs:  # fail on unknown layers, backbones or poolings before writing anything
        c, s = spec.layers()
        go.loss_network(spec.backbone, list(dict.fromkeys(c + s)), device, spec.pooling)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FaststError("exists and is not a folder", out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    tv_weight = stylize_options.pop("tv_weight", None)
    tv_weight = go.default_weights(normalized)[2] if tv_weight is None else tv_weight
    factors = {}
    for spec in runs:
        key = (spec.backbone, spec.content_layers, spec.style_layers)
        if key not in factors:
            if match_weights:
                m = go.matched_weights(spec.backbone, content_img, style_img, spec.content_layers, spec.style_layers,
                                       device=device)
                factors[key] = (m["style_weight"] / go.DEFAULT_STYLE_WEIGHT, m["tv_weight"] / go.DEFAULT_TV_WEIGHT)
            else:
                factors[key] = (1.0, 1.0)

    summary: list[dict[str, Any]] = []
    curves: list[list[dict[str, float]]] = []
    images: list[torch.Tensor] = []
    for i, spec in enumerate(runs, 1):
        name = run_name(i, spec)
        if progress:
            print(f"run {i}/{len(runs)}: {name}", file=sys.stderr, flush=True)
        c_layers, s_layers = spec.layers()
        style_factor, tv_factor = factors[(spec.backbone, spec.content_layers, spec.style_layers)]
        result = go.stylize(content_img, [style_img], backbone=spec.backbone, content_layers=c_layers,
                            style_layers=s_layers, content_weight=spec.content_weight,
                            style_weight=spec.style_weight * style_factor, tv_weight=tv_weight * tv_factor,
                            optimizer=spec.optimizer, pooling=spec.pooling, progress=progress, **stylize_options)
        image_path = save_image(result.image, out / "runs" / f"{name}.png")
        log_path = go.write_log(result.rows, out / "runs" / f"{name}.csv")
        scored = go.score(content_img, [style_img], result.image, style_scale=stylize_options.get("style_scale", 1.0),
                          device=device)
        s = result.settings
        summary.append({"run": name, "optimizer": spec.optimizer, "lr": s["lr"], "content_weight": spec.content_weight,
                        "style_weight": f"{s['style_weight']:.6g}", "tv_weight": f"{s['tv_weight']:.6g}",
                        "normalize_gradients": int(s["normalize_gradients"]),
                        "content_layers": "+".join(c_layers), "style_layers": "+".join(s_layers),
                        "backbone": spec.backbone, "pooling": spec.pooling, "evaluations": result.evaluations,
                        "seconds": round(result.seconds, 3), "passes_per_s": round(result.passes_per_second, 4),
                        **{k: f"{v:.6g}" for k, v in scored.items()},
                        "objective_total": f"{result.final['total']:.6g}",
                        "image": os.path.relpath(image_path, out), "log": os.path.relpath(log_path, out)})
        curves.append(result.rows)
        images.append(result.image)

    write_summary(summary, out / "summary.csv")
    axes = varied_axes(runs) or ["optimizer"]
    for axis in axes:
        plot_axis(runs, curves, axis, out / f"plot_{axis}.png")
    labels = [_label(i, spec, axes, row) for i, (spec, row) in enumerate(zip(runs, summary), 1)]
    contact_sheet([content_img, style_img] + images, ["content", "style"] + labels, out / "contact_sheet.png")
    return summary


def _label(index: int, spec: RunSpec, axes: Sequence[str], row: dict[str, Any]) -> str:
    parts = [f"{a.replace('_', ' ')}: {spec.value(a)}" for a in axes]
    return f"#{index} " + "\n".join(parts) + f"\nscore {float(row['total']):.3g}"


def write_summary(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """summary.csv, one row per run, written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return path


def plot_axis(runs: Sequence[RunSpec], curves: Sequence[Sequence[dict[str, float]]], axis: str, path: Path) -> Path:
    """Best total loss so far (relative to each run's first evaluation, so different objectives share an
    axis; L-BFGS line-search trials would otherwise show as spikes) against evaluations and seconds.
    Colour = the run's value on `axis`, line style = its other settings."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = list(dict.fromkeys(r.value(axis) for r in runs))
    others = [a for a in AXES if a != axis]
    rest = list(dict.fromkeys(tuple(r.value(a) for a in others) for r in runs))
    varied_others = [a for a in varied_axes(runs) if a != axis]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for spec, rows in zip(runs, curves):
        if not rows:
            continue
        first = rows[0]["total"] or 1.0
        ys = list(itertools.accumulate((max(r["total"] / first, 1e-12) for r in rows), min))
        other = tuple(spec.value(a) for a in others)
        label = spec.value(axis)
        if varied_others:
            label += " (" + ", ".join(spec.value(a) for a in varied_others) + ")"
        kw = dict(color=colors[values.index(spec.value(axis)) % len(colors)],
                  linestyle=styles[rest.index(other) % len(styles)], label=label, linewidth=1.4)
        ax1.plot([r["iteration"] for r in rows], ys, **kw)
        ax2.plot([r["seconds"] for r in rows], ys, **kw)
    for ax, xlabel in ((ax1, "loss evaluations (forward + backward)"), (ax2, "seconds")):
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("best total loss so far / first evaluation's")
        ax.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8, title=axis.replace("_", " "))
    fig.suptitle(f"Gatys loss curves by {axis.replace('_', ' ')} (each run's own objective)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
