"""Draws docs/controls.jpg: a strength strip and a stroke strip from a model (the bundled one by default).

    python docs/controls_figure.py [--model M] [--photo P] [--style NAME] [--out docs/controls.jpg]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)  # and the model's default
STROKES = (0.0, 0.5, 1.0)


def label(image, text: str):
    """The image with `text` written in its top-left corner on a dark box."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    box = draw.textbbox((6, 4), text)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0))
    draw.text((6, 4), text, fill=(255, 255, 255))
    return image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model file [the bundled one]")
    p.add_argument("--photo", default=str(REPO / "datasets/samples/photos/ocv_building.jpg"))
    p.add_argument("--stroke-photo", default=str(REPO / "datasets/samples/photos/skimage_chelsea.jpg"))
    p.add_argument("--style", default="starry_night")
    p.add_argument("--stroke-style", default="starry_night")
    p.add_argument("--stroke-strength", type=float, default=1.0, help="strength of the stroke strip [1]")
    p.add_argument("--size", type=int, default=320, help="long side of each picture, px")
    p.add_argument("--out", default=str(REPO / "docs/controls.jpg"))
    args = p.parse_args()

    from PIL import Image

    from fastst.images import load_image, tensor_to_pil
    from fastst.inference.stylizer import Stylizer, stylize
    from fastst.modelfile import load_model

    model = load_model(args.model)
    runner = Stylizer(model, device="cpu", precision="fp32")
    top, bottom = [], []
    photo = load_image(args.photo, size=args.size)
    for s in sorted(set(STRENGTHS) | {model.default_strength}):
        out = stylize(runner, photo, args.style, strength=s)
        mark = " (default)" if abs(s - model.default_strength) < 1e-6 else ""
        top.append(label(tensor_to_pil(out), f"strength {s:g}{mark}"))
    photo = load_image(args.stroke_photo, size=args.size)
    bottom.append(label(tensor_to_pil(photo), "photo"))
    for x in STROKES:
        out = stylize(runner, photo, args.stroke_style, stroke=x, strength=args.stroke_strength)
        bottom.append(label(tensor_to_pil(out), f"stroke {x:g} (strength {args.stroke_strength:g})"))
    w = max(sum(i.width for i in top), sum(i.width for i in bottom))
    h = top[0].height + bottom[0].height
    sheet = Image.new("RGB", (w, h), (255, 255, 255))
    for row, y in ((top, 0), (bottom, top[0].height)):
        x = 0
        for im in row:
            sheet.paste(im, (x, y))
            x += im.width
    sheet.thumbnail((1600, 1600))
    sheet.save(args.out, quality=82)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
