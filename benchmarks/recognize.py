"""Recognizability: does a stylized picture still show its photo's subject? Measured without the
style losses' VGG: an ImageNet classifier (EfficientNet-Lite0, benchmarks/classifier.py) names the
photo's most likely class, and the output counts as recognizable when that class is among the output's
five most likely. Reported per style and strength, for feature-space strength (the model's identity
row) and, with --pixel-blend, for the old blend of output and photo. A script that prints a table.

    python benchmarks/recognize.py                                  # bundled model, held-out photos, 512 px
    python benchmarks/recognize.py --model my.fst --strengths 1 0.75 0.5 --pixel-blend --csv rec.csv
    python benchmarks/recognize.py --photos DIR                     # every photo in DIR instead

The photos default to benchmarks/heldout_photos.txt under ../shared/data/photos: photos that training
from the bundled model on excludes (fastst train --exclude). The default strength row is the model's
own default (what `fastst infer` does with no options).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import benchutil as bu
from classifier import agreement, load_classifier, topk

HELDOUT = Path(__file__).resolve().parent / "heldout_photos.txt"
COLUMNS = ("model", "style", "mode", "strength", "photos", "recognizable", "seconds")


def read_list(path: Path) -> list[str]:
    """Relative paths in a list file (one a line, '#' comments)."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def heldout_photos(root: Path | None = None, list_file: Path = HELDOUT) -> list[Path]:
    root = root or bu.shared_path("photos")
    if root is None:
        raise SystemExit("no ../shared/data/photos here: give --photos DIR")
    files = [root / rel for rel in read_list(list_file)]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"{list_file}: {len(missing)} listed photos missing under {root}, e.g. {missing[0]}")
    return files


def load_photos(files: list[Path], size: int) -> list[torch.Tensor]:
    from fastst.images import load_image

    return [load_image(f, size=size) for f in files]


def outputs(stylizer, model, photos: list[torch.Tensor], style: str, strength: float, mode: str,
            stroke: float | None = None) -> list[torch.Tensor]:
    """The model's outputs for each photo: `mode` "feature" (row weights from fastst.controls; a model
    without an identity row falls back to the pixel blend) or "pixel" (the full-strength output blended
    with the photo)."""
    mix = model.mix(style, 1.0 if mode == "pixel" else strength, stroke)
    blend = strength if mode == "pixel" else mix.pixel_blend
    weights = torch.tensor([mix.weights])
    return [torch.lerp(x, stylizer.forward(x[None], weights)[0].clamp(0, 1), blend) for x in photos]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", default=[None], help="model files [the bundled one]")
    p.add_argument("--photos", type=Path, help="folder of photos [the held-out list under ../shared/data/photos]")
    p.add_argument("--list", type=Path, default=HELDOUT, help="list of photos relative to --photos' root")
    p.add_argument("--size", type=int, default=512, help="long side of the photos, px [512]")
    p.add_argument("--styles", nargs="*", help="styles (groups) [every style of the model]")
    p.add_argument("--strengths", type=float, nargs="*", help="strengths [the model's default]")
    p.add_argument("--stroke", type=float, help="stroke in [0, 1] [each style's default row]")
    p.add_argument("--pixel-blend", action="store_true", help="also measure the pixel blend at each strength")
    p.add_argument("--limit", type=int, help="only the first N photos")
    p.add_argument("--csv", type=Path, help="write the rows here")
    args = p.parse_args(argv)

    from fastst.controls import groups
    from fastst.images import find_images
    from fastst.inference.stylizer import Stylizer
    from fastst.modelfile import load_model

    files = find_images(args.photos) if args.photos else heldout_photos(list_file=args.list)
    files = files[: args.limit] if args.limit else files
    photos = load_photos(files, args.size)
    classifier = load_classifier()
    photo_top = torch.cat([topk(classifier, x) for x in photos])
    print(f"{len(photos)} photos at {args.size} px; {bu.machine_line('cpu')}")
    rows = []
    for path in args.model:
        model = load_model(path)
        stylizer = Stylizer(model, device="cpu")
        name = Path(model.path).name
        strengths = args.strengths if args.strengths else [model.default_strength]
        modes = ["feature"] + (["pixel"] if args.pixel_blend else [])
        for style in args.styles or list(groups(model.styles)):
            for mode in modes:
                for s in strengths:
                    t0 = time.perf_counter()
                    outs = outputs(stylizer, model, photos, style, s, mode, args.stroke)
                    hit = agreement(photo_top, torch.cat([topk(classifier, y) for y in outs]))
                    row = {"model": name, "style": style, "mode": mode, "strength": s, "photos": len(photos),
                               "recognizable": round(100 * hit.float().mean().item(), 1),
                               "seconds": round(time.perf_counter() - t0, 1)}
                    rows.append(row)
                    print(f"{name:28s} {style:16s} {mode:8s} s={s:<5g} recognizable {row['recognizable']:5.1f} %", flush=True)
    if args.csv:
        bu.write_csv(args.csv, rows, COLUMNS)


if __name__ == "__main__":
    main()
