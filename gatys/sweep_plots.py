"""Loss-curve plots of a Gatys sweep: one figure per varied axis, and for a learning-rate axis one panel
per optimizer plus the final objective against the rate (how sensitive each optimizer is to it)."""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastst.atomic import atomic_path

from .grid import AXES, RunSpec, varied_axes

EVALUATIONS = "loss evaluations (forward + backward)"
RELATIVE = "best total loss so far / first evaluation's"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def best_so_far(rows: Sequence[dict[str, float]]) -> list[float]:
    """Running minimum of the total loss relative to the first evaluation's, so different objectives
    share an axis (and L-BFGS's line-search trials do not show as spikes)."""
    first = rows[0]["total"] or 1.0
    return list(itertools.accumulate((max(r["total"] / first, 1e-12) for r in rows), min))


def _save(fig: Any, path: Path) -> Path:
    """Save as a 256-colour PNG: line plots lose nothing, and the file is a third the size."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    _pyplot().close(fig)
    with Image.open(buffer) as im, atomic_path(path) as tmp:
        im.convert("RGB").quantize(256).save(tmp, format="PNG", optimize=True)
    return path


def plot_axis(runs: Sequence[RunSpec], curves: Sequence[Sequence[dict[str, float]]], axis: str, path: Path) -> Path:
    """Best total loss so far against evaluations and seconds. Colour = the run's value on `axis`,
    line style = its other settings."""
    plt = _pyplot()
    values = list(dict.fromkeys(r.value(axis) for r in runs))
    others = [a for a in AXES if a != axis]
    rest = list(dict.fromkeys(tuple(r.value(a) for a in others) for r in runs))
    varied_others = [a for a in varied_axes(runs) if a != axis]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13.5, 4.5), layout="constrained")
    for spec, rows in zip(runs, curves):
        if not rows:
            continue
        ys = best_so_far(rows)
        label = spec.value(axis)
        if varied_others:
            label += " (" + ", ".join(spec.value(a) for a in varied_others) + ")"
        kw = dict(color=colors[values.index(spec.value(axis)) % len(colors)],
                  linestyle=styles[rest.index(tuple(spec.value(a) for a in others)) % len(styles)], label=label,
                  linewidth=1.4)
        ax1.plot([r["iteration"] for r in rows], ys, **kw)
        ax2.plot([r["seconds"] for r in rows], ys, **kw)
    for ax, xlabel in ((ax1, EVALUATIONS), (ax2, "seconds")):
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(RELATIVE)
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(*ax1.get_legend_handles_labels(), loc="outside right center", fontsize=8,
               title=axis.replace("_", " "))
    fig.suptitle(f"Gatys loss curves by {axis.replace('_', ' ')} (each run's own objective)")
    return _save(fig, path)


def plot_lr(runs: Sequence[RunSpec], curves: Sequence[Sequence[dict[str, float]]],
            summary: Sequence[dict[str, Any]], path: Path) -> Path:
    """One panel of loss curves per optimizer, coloured by learning rate, and a last panel with each
    run's final objective against its rate (log-log): a flat line is an optimizer insensitive to its rate."""
    plt = _pyplot()
    optimizers = list(dict.fromkeys(r.optimizer for r in runs))
    others = [a for a in varied_axes(runs) if a not in ("lr", "optimizer")]
    cols = min(len(optimizers) + 1, 3)
    nrows = math.ceil((len(optimizers) + 1) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.4 * cols, 3.5 * nrows), squeeze=False)
    panels = axes.ravel()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, opt in zip(panels, optimizers):
        mine = [(s, c) for s, c in zip(runs, curves) if s.optimizer == opt and c]
        rates = list(dict.fromkeys(s.value("lr") for s, _ in mine))
        for spec, rows in mine:
            label = f"lr {spec.value('lr')}" + (" (" + ", ".join(spec.value(a) for a in others) + ")" if others else "")
            ax.plot([r["iteration"] for r in rows], best_so_far(rows), label=label, linewidth=1.3,
                    color=colors[rates.index(spec.value("lr")) % len(colors)])
        ax.set(yscale="log", title=opt, xlabel=EVALUATIONS)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax = panels[len(optimizers)]
    lines: dict[str, list[tuple[float, float]]] = {}
    for spec, row in zip(runs, summary):
        key = spec.optimizer + (" (" + ", ".join(spec.value(a) for a in others) + ")" if others else "")
        lr, final = float(row["lr"]), float(row["objective_total"])
        if math.isfinite(lr) and lr > 0 and final > 0:
            lines.setdefault(key, []).append((lr, final))
    for key, points in lines.items():  # rates relative to the median one tried, so every optimizer shares the axis
        points.sort()
        middle = points[(len(points) - 1) // 2][0]
        ax.plot([p[0] / middle for p in points], [p[1] for p in points], marker="o", linewidth=1.3,
                label=f"{key} (1 = {middle:.3g})")
    ax.set(xscale="log", yscale="log", title="final objective against the rate",
           xlabel="learning rate / the median rate tried", ylabel="final total loss (run's objective)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    for extra in panels[len(optimizers) + 1:]:
        extra.set_visible(False)
    panels[0].set_ylabel(RELATIVE)
    fig.suptitle("Gatys learning-rate sweep")
    fig.tight_layout()
    return _save(fig, path)
