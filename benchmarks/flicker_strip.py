"""The picture of flicker for benchmarks/flicker.py --strip: consecutive frames of a clip, and under
each model's outputs their difference to the previous output warped along the flow, so that the
texture that is redrawn between frames (bright) stands apart from the texture that moves with the
scene (dark). Occluded pixels, which the warping error ignores, are shaded blue."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

GAIN = 4.0  # the differences are small: |ΔRGB| averaged over channels, times this
COUNT = 4  # frames in the strip


def difference_image(previous: np.ndarray, current: np.ndarray, backward: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: GAIN × mean_c |current − warp(previous)| in grey, occluded pixels blue."""
    from fastst.temporal import flow_warp

    warped, _ = flow_warp(previous, backward)
    d = np.clip(np.abs(current - warped).mean(-1) * GAIN, 0, 1)
    rgb = np.repeat(d[..., None], 3, -1)
    rgb[~visible] = (0.1, 0.15, 0.45)
    return (rgb * 255 + 0.5).astype(np.uint8)


def write_strip(path: Path, frames: list[np.ndarray], pairs: list[tuple[np.ndarray, np.ndarray]],
                outputs: dict[tuple[str, float], list[np.ndarray]], start: int) -> Path:
    """Rows: input frames; then for each (model, temporal strength): its outputs and their warped
    differences. Columns: frames start .. start+COUNT-1 (start ≥ 1, clipped to the clip)."""
    from fastst.atomic import atomic_path

    start = max(1, min(start, len(frames) - COUNT))
    cols = range(start, start + COUNT)
    h, w = frames[0].shape[:2]
    label_w, gap = 150, 4
    rows: list[tuple[str, list[np.ndarray]]] = [("input", [frames[t] for t in cols])]
    for (model, strength), outs in outputs.items():
        name = model if not strength else f"{model}\n+ temporal {strength:g}"
        rows.append((name, [(outs[t] * 255 + 0.5).astype(np.uint8) for t in cols]))
        rows.append((f"{name}\n|out - warped prev| x{GAIN:g}",
                     [difference_image(outs[t - 1], outs[t], *pairs[t - 1]) for t in cols]))
    sheet = Image.new("RGB", (label_w + COUNT * (w + gap), len(rows) * (h + gap) + 20), "white")
    draw = ImageDraw.Draw(sheet)
    for c, t in enumerate(cols):
        draw.text((label_w + c * (w + gap) + 4, 4), f"frame {t}", fill="black")
    for r, (label, images) in enumerate(rows):
        y = 20 + r * (h + gap)
        draw.multiline_text((4, y + 4), label, fill="black")
        for c, image in enumerate(images):
            sheet.paste(Image.fromarray(image), (label_w + c * (w + gap), y))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG", quality=88)
    return path
