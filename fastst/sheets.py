"""Contact sheets: labelled grids of images, for people who would rather look than read."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from .images import save_image, tensor_to_pil


def contact_sheet(images: Sequence[torch.Tensor], labels: Sequence[str], path: Path, tile: int = 256,
                  cols: int | None = None, quality: int = 95) -> Path:
    """A grid of thumbnails (long side `tile`) with a text label under each, saved atomically
    (`quality` for JPEG and WebP)."""
    font = _font(13)
    label_h = 16 * max(label.count("\n") + 1 for label in labels) + 6
    cols = cols or min(len(images), max(2, math.ceil(math.sqrt(len(images)))))
    rows = math.ceil(len(images) / cols)
    sheet = Image.new("RGB", (cols * (tile + 8) + 8, rows * (tile + label_h + 8) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (img, label) in enumerate(zip(images, labels)):
        thumb = tensor_to_pil(img)
        scale = tile / max(thumb.size)  # fit the tile, enlarging small results too
        thumb = thumb.resize((max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale))),
                             Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
        x = 8 + (k % cols) * (tile + 8)
        y = 8 + (k // cols) * (tile + label_h + 8)
        sheet.paste(thumb, (x + (tile - thumb.width) // 2, y + (tile - thumb.height) // 2))
        draw.multiline_text((x, y + tile + 3), label, fill=(0, 0, 0), font=font, spacing=3)
    return save_image(sheet, path, quality=quality)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()
