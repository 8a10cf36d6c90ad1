"""Edge artefacts of a model: the brightness of its outputs' outer rows and columns against their
interior (fastst.images.edge_brightness), per side and style, averaged over a folder of photos. About
1 on every side for a clean model; a model that learned a style image's frame reads well below 1 all
round. Below each style, the same measure on its style image (found as quality.py finds it), at the
same fraction of its size: a network learns a painting's own dark or light edges from its padding.
A script that prints a table, not a test.

    python benchmarks/edges.py                                  # the bundled model, sample photos, 2 px
    python benchmarks/edges.py --model old.fst --style starry_night --width 8
    python benchmarks/edges.py --upside-down     # a band that turns with the photo is the network's, not the photo's
    python benchmarks/edges.py --pad-bottom 32   # the photo's bottom mirrored 32 px further, cropped off again
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import benchutil as bu  # noqa: E402 - also puts the repository on sys.path
from fastst.errors import FaststError
from fastst.images import edge_brightness, find_images, load_image, resize_long_side
from fastst.modelfile import load_model
from quality import find_style_image

MARGIN = 8  # px at --size between the measured edges and the interior they are compared with


def stylized(model, x: torch.Tensor, name: str, upside_down: bool = False, pad_bottom: int = 0) -> torch.Tensor:
    """The model's output for photo `x` (3, H, W): optionally run on the photo turned upside down and
    turned back, or on the photo with its bottom reflected `pad_bottom` px further and cropped back."""
    h = x.shape[-2]
    x = x.flip(-2) if upside_down else x
    x = F.pad(x.unsqueeze(0), (0, 0, 0, pad_bottom), mode="reflect") if pad_bottom else x.unsqueeze(0)
    y = model.net(x, model.style_weights(name))[0][..., :h, :]
    return y.flip(-2) if upside_down else y


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model file (default: the bundled pretrained model)")
    p.add_argument("--style", action="append", default=None, help="style name; repeat (default: every style)")
    p.add_argument("--photos-dir", default=str(bu.SAMPLES / "photos"), help="photos (default: the bundled samples)")
    p.add_argument("--size", type=int, default=256, help="long side of each photo in px (default: 256)")
    p.add_argument("--width", type=int, default=2, help="outer rows/columns measured (default: 2)")
    p.add_argument("--upside-down", action="store_true", help="stylize each photo turned upside down, then turn it back")
    p.add_argument("--pad-bottom", type=int, default=0, metavar="PX",
                   help="reflect each photo's bottom PX further before stylizing and crop it off after (default: 0)")
    args = p.parse_args(argv)

    if args.size < 4 * MARGIN or not 1 <= args.width <= MARGIN:
        p.error(f"--size must be at least {4 * MARGIN} and --width 1-{MARGIN}")
    if not 0 <= args.pad_bottom < args.size // 2:
        p.error(f"--pad-bottom must be 0 to {args.size // 2 - 1} px (a reflection is shorter than the photo)")
    model = load_model(args.model)
    unknown = [n for n in args.style or [] if n not in model.style_names]
    if unknown:
        p.error(f"{model.path.name} has no style {unknown[0]!r} (it has {', '.join(model.style_names)})")
    try:
        photos = [resize_long_side(load_image(f), args.size) for f in find_images(args.photos_dir)]
    except FaststError as e:
        p.error(str(e))
    if not photos:
        p.error(f"{args.photos_dir}: no images found")
    lowest = min(x.shape[-2] for x in photos)
    if args.pad_bottom >= lowest:
        p.error(f"--pad-bottom {args.pad_bottom}: a reflection must be shorter than the lowest photo ({lowest} px)")
    how = "".join([", upside down and back" if args.upside_down else "",
                   f", bottom padded {args.pad_bottom} px" if args.pad_bottom else ""])
    print(f"{model.path.name}: {len(photos)} photo(s) at {args.size} px{how}, outer {args.width} px over the interior")
    print(f"{'style':<20}{'top':>8}{'bottom':>8}{'left':>8}{'right':>8}")
    default_rows = [s.name for s in model.styles if s.kind != "identity" and (s.group or s.name) == s.name]
    for name in args.style or default_rows:  # each style's own row; --style NAME for any other row
        with torch.no_grad():
            sides = torch.tensor([edge_brightness(stylized(model, x, name, args.upside_down, args.pad_bottom), args.width,
                                                  MARGIN) for x in photos]).mean(0)
        print(f"{name:<20}" + "".join(f"{v:>8.2f}" for v in sides.tolist()))
        style_path = find_style_image(model, model.style_names.index(name))
        if style_path is not None:
            style = load_image(style_path)
            scale = max(style.shape[-2:]) / args.size
            own = edge_brightness(style, max(1, round(args.width * scale)), round(MARGIN * scale))
            print(f"{'  its style image':<20}" + "".join(f"{v:>8.2f}" for v in own))


if __name__ == "__main__":
    main()
