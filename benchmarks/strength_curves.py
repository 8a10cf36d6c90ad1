"""Strength as a curve: the content term against the style term (the fixed Gatys scorer of
gatys.optimize.score) as the strength goes 0 → 1, for (a) feature-space strength (row weights between
the model's identity row and the style, fastst.controls), (b) the pixel blend of output and photo, and
(c) Gatys' optimisation at several style weights, the reference frontier. Lower-left is better: at
equal content term, the lower style term paints more of the style. Writes one plot and a strip of
outputs per photo (feature-space row above the pixel-blend row). A script, not a test.

    python benchmarks/strength_curves.py --out curves.png --strip strips.jpg
    python benchmarks/strength_curves.py --model my.fst --style mine --style-image mine.jpg --gatys-evals 0
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import benchutil as bu

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
GATYS_STYLE_WEIGHTS = (50.0, 500.0, 5e3, 5e4)  # Gatys' default β is 5e3 (gatys.defaults)
DEFAULT_PHOTOS = ("skimage_chelsea.jpg", "ocv_building.jpg")
COLUMNS = ("method", "setting", "photo", "content", "style", "seconds")


def plot(rows: list[dict], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    for method, marker in (("feature strength", "o-"), ("pixel blend", "s--"), ("gatys", "^:")):
        points: dict[float, list[tuple[float, float]]] = {}
        for r in rows:
            if r["method"] == method and r["content"] > 0:  # the photo itself (content 0) is off a log axis
                points.setdefault(r["setting"], []).append((r["content"], r["style"]))
        if not points:
            continue
        settings = sorted(points)
        xs = [sum(c for c, _ in points[s]) / len(points[s]) for s in settings]
        ys = [sum(v for _, v in points[s]) / len(points[s]) for s in settings]
        ax.plot(xs, ys, marker, label=method)
        for s, x, y in zip(settings, xs, ys):
            ax.annotate(f"{s:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("content term (mean over photos; the photo itself, 0, is left out)")
    ax.set_ylabel("style term (mean over photos)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model file [the bundled one]")
    p.add_argument("--style", default="starry_night", help="style (group) name [starry_night]")
    p.add_argument("--style-image", type=Path, help="that style's image [found by the hash the model stores]")
    p.add_argument("--photos", type=Path, nargs="*", help=f"photos [{', '.join(DEFAULT_PHOTOS)} from the samples]")
    p.add_argument("--size", type=int, default=256, help="long side, px [256]")
    p.add_argument("--strengths", type=float, nargs="*", default=list(STRENGTHS))
    p.add_argument("--gatys-weights", type=float, nargs="*", default=list(GATYS_STYLE_WEIGHTS),
                   help="Gatys style weights β, content weight 1 [50 500 5000 50000]")
    p.add_argument("--gatys-evals", type=int, default=100, help="L-BFGS evaluations per Gatys run; 0: none [100]")
    p.add_argument("--out", type=Path, default=Path("strength_curves.png"), help="the plot [strength_curves.png]")
    p.add_argument("--strip", type=Path, help="also write the output strips here (JPEG)")
    p.add_argument("--csv", type=Path, help="also write every point here")
    args = p.parse_args(argv)

    from fastst.images import load_image, save_image
    from fastst.inference.stylizer import Stylizer
    from fastst.modelfile import load_model
    from gatys.optimize import stylize as gatys_stylize
    from gatys.refine import find_style_image
    from gatys.scoring import score

    model = load_model(args.model)
    stylizer = Stylizer(model, device="cpu", precision="fp32")
    rows_of_model = model.mix(args.style, 1.0)
    index = max(range(len(rows_of_model.weights)), key=lambda i: rows_of_model.weights[i])
    style_path = args.style_image or find_style_image(model, index, [bu.SAMPLES / "styles"] +
                                                      ([bu.shared_path("styles")] if bu.shared_path("styles") else []))
    if style_path is None:
        raise SystemExit(f"cannot find the image of style {args.style}: give --style-image")
    style = load_image(style_path)
    photos = args.photos or [bu.SAMPLES / "photos" / name for name in DEFAULT_PHOTOS]
    print(f"{model.path.name}, style {args.style}, {len(photos)} photos at {args.size} px; {bu.machine_line('cpu')}")
    if model.mix(args.style, 0.5).pixel_blend != 1.0:
        print("this model has no identity row: its feature strength falls back to the pixel blend")
    rows: list[dict] = []
    strips = []
    for photo_path in photos:
        photo = load_image(photo_path, size=args.size)
        full = stylizer.forward(photo[None], torch.tensor([model.mix(args.style, 1.0).weights]))[0].clamp(0, 1)
        line: dict[str, list[torch.Tensor]] = {"feature strength": [], "pixel blend": []}
        for s in args.strengths:
            mix = model.mix(args.style, s)
            feat = torch.lerp(photo, stylizer.forward(photo[None], torch.tensor([mix.weights]))[0].clamp(0, 1),
                              mix.pixel_blend)
            for method, image in (("feature strength", feat), ("pixel blend", torch.lerp(photo, full, s))):
                t0 = time.perf_counter()
                terms = score(photo, style, image)
                line[method].append(image)
                rows.append({"method": method, "setting": s, "photo": photo_path.name, "content": terms["content"],
                                 "style": terms["style"], "seconds": round(time.perf_counter() - t0, 2)})
                print(f"{photo_path.name:24s} {method:17s} s={s:<5g} content {terms['content']:.4g} "
                      f"style {terms['style']:.4g}", flush=True)
        for beta in args.gatys_weights if args.gatys_evals else []:
            t0 = time.perf_counter()
            result = gatys_stylize(photo, style, style_weight=beta, content_weight=1.0, iterations=args.gatys_evals,
                                size=args.size, device="cpu", seed=0)
            terms = score(photo, style, result.image)
            rows.append({"method": "gatys", "setting": beta, "photo": photo_path.name, "content": terms["content"],
                             "style": terms["style"], "seconds": round(time.perf_counter() - t0, 1)})
            print(f"{photo_path.name:24s} gatys β={beta:<8g} content {terms['content']:.4g} style {terms['style']:.4g}",
                  flush=True)
        strips.append(torch.cat([torch.cat(line["feature strength"], 2), torch.cat(line["pixel blend"], 2)], 1))
    plot(rows, args.out, f"{model.path.name}, {args.style}, {len(photos)} photos at {args.size} px: "
                         "strength 0 → 1 (feature, pixel), Gatys by β")
    print(f"wrote {args.out}")
    if args.strip:
        width = max(s.shape[-1] for s in strips)
        padded = [torch.nn.functional.pad(s, (0, width - s.shape[-1]), value=1.0) for s in strips]
        save_image(torch.cat(padded, 1), args.strip, quality=85)
        print(f"wrote {args.strip}")
    if args.csv:
        bu.write_csv(args.csv, rows, COLUMNS)


if __name__ == "__main__":
    main()
