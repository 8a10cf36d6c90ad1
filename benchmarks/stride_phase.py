"""How much a model's painting depends on where the picture sits on its sampling grid.

The transformer halves the resolution twice, so it paints on a grid of 4-px cells. A network whose
strokes move with the scene would answer an input moved by d pixels with its output moved by d pixels.
For whole-pixel shifts d = 0 … --max-shift this prints (and plots) how far each model is from that:

    instability(d) = mean over photos, pixels ≥ --margin px from the border and RGB in [0, 1] of
                     ( f(x moved by d) − (f(x) moved by d) )²

Both sides are crops of the same larger picture, so no pixel is resampled. d = 4 and 8 cost next to
nothing, because the grid lines up again; d = 1–3 is what a pan of a pixel or two a frame costs, the
flicker `benchmarks/flicker.py` measures on video.

    python benchmarks/stride_phase.py --model before.fst --model fastst/pretrained/fastst-4styles.fst -o phase.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import benchutil as bu


def photos(size: int, max_shift: int, count: int):
    """(N, 3, size + max_shift, size + max_shift) centre crops of the bundled sample photos."""
    import torch

    from fastst.images import find_images

    paths = find_images(bu.SAMPLES / "photos")[:count]
    return torch.stack([bu.square(bu.load_content(p), size + max_shift) for p in paths])


def instability(net, weights, pictures, size: int, max_shift: int, margin: int) -> list[float]:
    """instability(d) for d = 0 … max_shift, horizontal shifts, in fp32."""
    import torch

    with torch.no_grad():
        base = net(pictures[..., :size, :size], weights)
        values = []
        for d in range(max_shift + 1):
            moved = net(pictures[..., :size, d:d + size], weights)  # the scene moved d px to the left
            a = moved[..., margin:size - margin, margin:size - margin - d]
            b = base[..., margin:size - margin, margin + d:size - margin]
            values.append(float(((a - b) ** 2).mean()))
    return values


def plot(curves: dict[tuple[str, str], list[float]], out: Path) -> None:
    """One line per (model, style): colour by style, line and marker by model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastst.atomic import atomic_path

    models = list(dict.fromkeys(m for m, _ in curves))
    styles = list(dict.fromkeys(s for _, s in curves))
    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    for (model, style), values in curves.items():
        i = models.index(model)
        ax.plot(range(len(values)), values, color=f"C{styles.index(style)}", ls=("-", "--", ":", "-.")[i % 4],
                marker="osD^v"[i % 5], ms=4, label=f"{model} {style}")
    ax.set_xlabel("whole-pixel shift of the input (px)")
    ax.set_ylabel("mean squared difference")
    ax.set_title("f(x moved) against f(x) moved: 0 = the painting moves with the scene", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", type=Path, help="model file (repeatable) [the bundled model]")
    ap.add_argument("--style", action="append", help="style name (repeatable) [every style row of each model]")
    ap.add_argument("--size", type=int, default=256, help="side of the square pictures [256]")
    ap.add_argument("--max-shift", type=int, default=8, help="largest shift, px [8]")
    ap.add_argument("--margin", type=int, default=32, help="border left out, px [32]")
    ap.add_argument("--photos", type=int, default=8, help="how many bundled sample photos [8]")
    ap.add_argument("-o", "--out", type=Path, help="also plot the curves to this PNG")
    args = ap.parse_args(argv)
    import torch

    from fastst.errors import FaststError
    from fastst.modelfile import load_model
    from fastst.paths import check_not_inputs, check_writable_folder

    try:
        models = [(p.name, load_model(p)) for p in args.model] if args.model else [("bundled", load_model())]
        if args.out is not None:
            check_not_inputs([args.out], args.model or [])
            check_writable_folder(args.out.parent)
        if args.max_shift < 1:
            raise FaststError(f"--max-shift must be at least 1 px, got {args.max_shift}")
        if args.size < 2 * args.margin + args.max_shift + 16:
            raise FaststError(f"--size {args.size} leaves nothing inside a {args.margin}-px margin")
    except FaststError as e:
        print(f"stride_phase: {e}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    pictures = photos(args.size, args.max_shift, args.photos)
    print(bu.machine_line())
    print(f"{len(pictures)} photos at {args.size} px, margin {args.margin} px; instability(d), d = 0 … {args.max_shift}")
    curves: dict[tuple[str, str], list[float]] = {}
    for name, model in models:
        net = model.net.float().eval()
        styles = args.style or [s.name for s in model.styles if s.kind == "style" and (s.group or s.name) == s.name]
        for style in styles:
            try:
                weights = model.style_weights(style, len(pictures))
            except FaststError as e:
                print(f"stride_phase: {e}", file=sys.stderr)
                return 2
            values = instability(net, weights, pictures, args.size, args.max_shift, args.margin)
            curves[(name, style)] = values
            off_grid = [v for d, v in enumerate(values) if d % 4]
            on_grid = [v for d, v in enumerate(values) if d and d % 4 == 0]
            print(f"{name:28s} {style:16s} " + " ".join(f"{v:.5f}" for v in values)
                  + f"   off-grid mean {sum(off_grid) / len(off_grid):.5f}, on-grid {sum(on_grid) / max(len(on_grid), 1):.5f}")
    if args.out is not None:
        plot(curves, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
