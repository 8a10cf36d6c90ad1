"""The loss history of a run: Lightning's CSV log stitched across resumed legs, and its plot."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from ..atomic import atomic_path


def keep_metrics_history(log_dir: Path, resuming: bool) -> None:
    """Lightning's CSV logger deletes metrics.csv from a log folder it finds in use. When resuming,
    keep it as metrics.partN.csv so that the loss history and plot span the whole run; a fresh run
    in the folder drops earlier parts as Lightning drops metrics.csv."""
    parts = metrics_parts(log_dir)
    current = log_dir / "metrics.csv"
    if not resuming:
        for part in parts:
            part.unlink()
    elif current.is_file():
        current.rename(log_dir / f"metrics.part{len(parts)}.csv")


def metrics_parts(log_dir: Path) -> list[Path]:
    """The kept metrics of earlier legs of a resumed run, oldest first."""
    found = [(f, f.name[len("metrics.part"):-len(".csv")]) for f in Path(log_dir).glob("metrics.part*.csv")]
    return [f for f, n in sorted(found, key=lambda fn: int(fn[1]) if fn[1].isdigit() else -1) if n.isdigit()]


def read_metrics(metrics_csv: Path) -> list[dict[str, str]]:
    """The rows of metrics.csv preceded by those of the kept earlier parts; where a run was resumed
    from an older checkpoint, the earlier part's rows from that step on are superseded and dropped."""
    legs = []
    for path in metrics_parts(metrics_csv.parent) + [metrics_csv]:
        if path.is_file():
            with open(path, newline="") as f:
                legs.append([row for row in csv.DictReader(f) if row.get("step")])
    rows: list[dict[str, str]] = []
    cutoff = math.inf
    for leg in reversed(legs):
        rows[:0] = [row for row in leg if int(row["step"]) < cutoff]
        if leg:
            cutoff = min(cutoff, min(int(row["step"]) for row in leg))
    return rows


Series = dict[str, list[tuple[int, float]]]


def _series(metrics_csv: Path) -> tuple[Series, Series]:
    """The logged training and validation losses by name ("loss", "style" …), as (step, value) points."""
    train: Series = {}
    val: Series = {}
    for row in read_metrics(metrics_csv):
        for key, value in row.items():
            if value and key.startswith(("train/", "val/")):
                kind, _, name = key.partition("/")
                (train if kind == "train" else val).setdefault(name, []).append((int(row["step"]), float(value)))
    return train, val


def plot_losses(metrics_csv: Path, out_png: Path) -> Path | None:
    """Plot the logged losses (log scale) against the step, earlier legs of a resumed run included,
    validation losses over the training curve of the same name; returns the PNG path, or None without data."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    series, val = _series(metrics_csv)
    if not series:
        return None
    per_style = {name[5:]: points for name, points in val.items() if name.startswith("loss_")}
    panels = sorted(series.items()) + ([("validation loss per style", [])] if per_style else [])
    fig = Figure(figsize=(3.2 * len(panels), 2.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, points) in zip(axes, panels):
        if name == "validation loss per style":
            lines = [(label, pts, "o") for label, pts in per_style.items()]
        else:
            lines = [("train", points, None)] + ([("validation", val[name], "o")] if name in val else [])
        for label, pts, marker in lines:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1, label=label, marker=marker, ms=3)
        if len(lines) > 1:
            ax.legend(fontsize=6)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_yscale("log")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return out_png
