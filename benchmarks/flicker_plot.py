"""Flicker against style, per clip: every model (and `--temporal` run) of `benchmarks/flicker.py`'s CSVs
as a point at (its warping error, its style term), both as multiples of a reference model's for the
same style and clip, on log axes, with the region a stable model should reach shaded (at most
`--max-warp` of the reference's flicker with at most `--max-style` of its style term).

    python benchmarks/flicker.py --model before.fst --model after.fst --csv runs.csv
    python benchmarks/flicker_plot.py runs.csv --reference before.fst -o frontier.png
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

import benchutil  # noqa: F401  (puts the checkout on the path for fastst)

MARKERS = "osD^vP*X<>hp"


def load_rows(paths: list[Path]) -> list[dict]:
    """The rows of the CSVs that score a model (not the input frames), later files winning on repeats."""
    rows: dict[tuple, dict] = {}
    for path in paths:
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                if r["model"] != "input" and r["style_term"] not in ("", "nan"):
                    rows[(r["clip"], r["model"], r["style"], float(r["temporal"]))] = r
    return list(rows.values())


def relative_points(rows: list[dict], reference: str) -> dict[str, dict[str, list[tuple[str, float, float]]]]:
    """clip → label → [(style, warp error × reference's, style term × reference's)], the reference
    being `reference`'s plain run (no --temporal, own style row) of the same clip and style."""
    ref = {(r["clip"], r["style"]): r for r in rows if r["model"] == reference and float(r["temporal"]) == 0}
    points: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        style, _, strength = r["style"].partition(" s=")  # flicker.py --strength S names styles "NAME s=S"
        base = ref.get((r["clip"], style))
        if base is None:
            continue
        label = r["model"] + (f" at strength {strength}" if strength else "")
        label += f" + --temporal {float(r['temporal']):g}" if float(r["temporal"]) else ""
        points[r["clip"]][label].append((style, float(r["warp_error"]) / float(base["warp_error"]),
                                         float(r["style_term"]) / float(base["style_term"])))
    return points


def _leading_digit(value: float) -> int:
    return int(round(value / 10 ** math.floor(math.log10(value)))) if value > 0 else 0


def plot(points: dict, out: Path, max_warp: float, max_style: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(1, len(points), figsize=(6 * len(points), 5), squeeze=False)
    labels = sorted({label for clip in points.values() for label in clip})
    styles = sorted({p[0] for clip in points.values() for pts in clip.values() for p in pts})
    colours = {s: f"C{i}" for i, s in enumerate(styles)}
    for ax, (clip, by_label) in zip(axes[0], sorted(points.items())):
        ax.add_patch(plt.Rectangle((1e-3, 1e-3), max_warp - 1e-3, max_style - 1e-3, color="green", alpha=0.12,
                                   label=f"target: ≤ {max_warp:g}× flicker, ≤ {max_style:g}× style term"))
        for label, pts in sorted(by_label.items()):
            marker = MARKERS[labels.index(label) % len(MARKERS)]
            for style, w, s in pts:
                ax.scatter(w, s, marker=marker, color=colours[style], s=50)
        ax.set(xscale="log", yscale="log", title=clip, xlabel="warping error × reference (lower: less flicker)",
               ylabel="style term × reference (lower: closer to the painting)")
        allw = [p[1] for pts in by_label.values() for p in pts]
        alls = [p[2] for pts in by_label.values() for p in pts]
        ax.set_xlim(min(allw + [max_warp]) / 1.5, max(allw + [1]) * 1.5)
        ax.set_ylim(min(alls + [1]) / 1.5, max(alls + [max_style]) * 1.5)
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers (0.3, 2), not powers of ten
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}" if _leading_digit(v) in (2, 3, 5) else ""))
        ax.grid(True, which="both", alpha=0.3)
    handles = [plt.Line2D([], [], marker=MARKERS[i % len(MARKERS)], color="grey", ls="", label=lab)
               for i, lab in enumerate(labels)]
    handles += [plt.Line2D([], [], marker="o", color=c, ls="", label=s) for s, c in colours.items()]
    handles += [plt.Rectangle((0, 0), 1, 1, color="green", alpha=0.12, label="target")]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    from fastst.atomic import atomic_path

    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+", type=Path, help="CSV files written by benchmarks/flicker.py --csv")
    ap.add_argument("--reference", required=True, help="the model column value every point is divided by")
    ap.add_argument("--max-warp", type=float, default=0.5, help="the target's largest flicker multiple [0.5]")
    ap.add_argument("--max-style", type=float, default=1.1, help="the target's largest style term multiple [1.1]")
    ap.add_argument("-o", "--out", type=Path, required=True, help="the PNG to write")
    args = ap.parse_args(argv)
    from fastst.errors import FaststError
    from fastst.paths import check_not_inputs, check_writable_folder

    try:  # the command's guards, before any work: inputs there, the output none of them, its folder writable
        for path in args.csv:
            if not path.is_file():
                raise FaststError("no such file", path)
        check_not_inputs([args.out], args.csv)
        check_writable_folder(args.out.parent)
    except FaststError as e:
        print(f"flicker_plot: {e}", file=sys.stderr)
        return 2
    try:
        points = relative_points(load_rows(args.csv), args.reference)
    except (KeyError, ValueError, UnicodeDecodeError) as e:
        print(f"flicker_plot: {' '.join(map(str, args.csv))}: not a CSV of benchmarks/flicker.py ({e})", file=sys.stderr)
        return 2
    if not points:
        print(f"flicker_plot: no rows of reference model '{args.reference}' in the CSVs", file=sys.stderr)
        return 2
    for clip, by_label in sorted(points.items()):
        for label, pts in sorted(by_label.items()):
            cells = ", ".join(f"{s} {w:.2f}×/{t:.2f}×" for s, w, t in pts)
            print(f"{clip:14s} {label:40s} {cells}")
    plot(points, args.out, args.max_warp, args.max_style)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
