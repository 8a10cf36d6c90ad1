"""Make docs/pretrained.jpg: bundled sample photos, each followed by the model's output for every style.

    python docs/pretrained_sheet.py [--model MODEL] [--out docs/pretrained.jpg]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from fastst.controls import groups
from fastst.images import load_image
from fastst.inference.stylizer import Stylizer, stylize
from fastst.modelfile import load_model
from fastst.sheets import contact_sheet

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ["skimage_chelsea.jpg", "ocv_building.jpg", "skimage_astronaut.jpg"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model file (default: the bundled pretrained model)")
    p.add_argument("--out", default=str(ROOT / "docs" / "pretrained.jpg"))
    p.add_argument("--size", type=int, default=384, help="long side the photos are stylized at")
    args = p.parse_args()
    model = load_model(args.model)
    runner = Stylizer(model, device="cpu", precision="fp32")
    images, labels = [], []
    for name in PHOTOS:
        photo = load_image(ROOT / "datasets" / "samples" / "photos" / name)
        images.append(photo)
        labels.append(Path(name).stem)
        for style in groups(model.styles):  # each style at the model's default strength
            images.append(stylize(runner, photo, style, max_size=args.size))
            labels.append(style)
    # a README picture: JPEG quality 85 keeps it under 200 KB
    print(contact_sheet(images, labels, Path(args.out), tile=192, cols=1 + len(groups(model.styles)), quality=85))


if __name__ == "__main__":
    main()
