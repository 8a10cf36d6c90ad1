"""Image I/O shared by every command: robust loading to RGB float tensors, resizing, atomic saving."""
from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_path
from .errors import FaststError

log = logging.getLogger(__name__)
#: Image files read as inputs (folders are searched for these).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
#: Image files written as outputs, by suffix, with Pillow's format name.
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                ".tif": "TIFF", ".tiff": "TIFF"}
IMAGE_OUTPUT_SUFFIXES = tuple(SAVE_FORMATS)
MIN_SIDE = 16  # smaller images cannot pass through the network's strided convolutions meaningfully


def check_input_file(path: Path, expected: str = "an image file") -> None:
    """FaststError unless `path` is a non-empty file; `expected` names what a directory should have been."""
    if not path.exists():
        raise FaststError("no such file", path)
    if path.is_dir():
        raise FaststError(f"is a directory, expected {expected}", path)
    if path.stat().st_size == 0:
        raise FaststError("empty file (0 bytes)", path)


def load_pil(path: str | os.PathLike) -> Image.Image:
    """Open an image as 8-bit RGB with EXIF orientation applied; alpha is composited on white."""
    path = Path(path)
    check_input_file(path)
    try:
        with warnings.catch_warnings(record=True) as caught:  # PIL's bomb warning, said our way
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
        if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
            log.warning("%s: a very large image (%dx%d, %.0f megapixels): it takes a lot of memory and time",
                        path, im.width, im.height, im.width * im.height / 1e6)
        return to_rgb(im)
    except FaststError:
        raise
    except UnidentifiedImageError:
        raise FaststError("not an image (unrecognised format)", path) from None
    except PermissionError:
        raise FaststError("cannot read file (permission denied)", path) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise FaststError(f"corrupt or truncated image ({e})", path) from None
    except Image.DecompressionBombError as e:
        raise FaststError(f"image too large ({e})", path) from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB: 16- and 32-bit grey scaled by their range, alpha and palettes
    composited on white (as a photo viewer shows them)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits by the type's range rather than clipping
        arr = np.asarray(im).astype(np.float64)
        top = 65535.0 if arr.max() > 255 or im.mode.startswith("I;16") else 255.0
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "La", "PA"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "RGBa"):
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im.convert("RGBA")).convert("RGB")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else (255.0 if arr.max() <= 255 else 65535.0)
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK (Pillow inverts Adobe CMYK correctly), YCbCr, I;16 RGB…
    return im


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image -> float tensor (3, H, W) in [0, 1]."""
    arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """Float tensor (3, H, W) or (1, 3, H, W) in [0, 1] -> 8-bit RGB PIL image (rounded, clamped)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError("tensor_to_pil takes one image")
        t = t[0]
    arr = t.detach().float().clamp(0, 1).mul(255.0).add_(0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def load_image(path: str | os.PathLike, size: int | None = None, min_side: int = MIN_SIDE) -> torch.Tensor:
    """Load an image file as a (3, H, W) float tensor in [0, 1], optionally resized to long side `size`."""
    im = load_pil(path)
    if min(im.size) < min_side:
        raise FaststError(f"image too small ({im.size[0]}x{im.size[1]}, need at least {min_side} px a side)", path)
    t = pil_to_tensor(im)
    if size is not None:
        t = resize_long_side(t, size)
    return t


def uniform_border(image: torch.Tensor, tol: float = 0.05) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): how many edge rows and columns of a (3, H, W) image in [0, 1] are
    one flat colour, the outermost line's (a scan's frame or a letterbox): 98 % of their pixels within
    `tol` of it, which JPEG ringing allows. A model trained on a style with such a border learns to
    draw it along its outputs' edges."""
    def run(lines: torch.Tensor) -> int:  # lines: (L, 3, N), outermost first
        edge = lines[0].median(dim=1, keepdim=True).values
        near = ((lines - edge).abs().amax(dim=1) <= tol).float().mean(dim=1)
        flat = (near >= 0.98).tolist()
        return len(flat) if all(flat) else flat.index(False)

    rows, cols = image.permute(1, 0, 2), image.permute(2, 0, 1)
    return run(rows), run(rows.flip(0)), run(cols), run(cols.flip(0))


def edge_brightness(image: torch.Tensor, width: int = 2, margin: int = 8) -> tuple[float, float, float, float]:
    """(top, bottom, left, right): the mean brightness of the outer `width` rows or columns of a
    (3, H, W) image over that of its interior (`margin` px in from every edge). About 1 for a plain
    stylized photo; well below 1 on every side where a model draws a frame it learned from a style image."""
    y = image.mean(dim=0)
    inner = float(y[margin:-margin, margin:-margin].mean())
    sides = (y[:width], y[-width:], y[:, :width], y[:, -width:])
    return tuple(float(s.mean()) / max(inner, 1e-6) for s in sides)


def _resize(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    batched = t.dim() == 4
    x = t if batched else t.unsqueeze(0)
    if (h, w) != tuple(x.shape[-2:]):
        shrinking = h < x.shape[-2] or w < x.shape[-1]
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=shrinking).clamp_(0, 1)
    return x if batched else x[0]


def resize_long_side(t: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the longer side is `size` px, keeping the aspect ratio."""
    h, w = t.shape[-2:]
    s = size / max(h, w)
    return _resize(t, max(1, round(h * s)), max(1, round(w * s)))


def resize_short_side(t: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the shorter side is `size` px, keeping the aspect ratio."""
    h, w = t.shape[-2:]
    s = size / min(h, w)
    return _resize(t, max(1, round(h * s)), max(1, round(w * s)))


def resize_exact(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize to exactly height x width (aspect ratio not kept)."""
    return _resize(t, height, width)


def save_image(t: torch.Tensor | Image.Image, path: str | os.PathLike, quality: int = 95) -> Path:
    """Save an image (tensor in [0, 1] or PIL) as PNG/JPEG/WebP/BMP atomically; format from the suffix."""
    path = Path(path)
    im = t if isinstance(t, Image.Image) else tensor_to_pil(t)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise FaststError(f"unsupported output format '{path.suffix}' (use .png, .jpg, .webp or .bmp)", path)
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "JPEG" and im.mode not in ("RGB", "L", "CMYK"):
        im = to_rgb(im)  # JPEG has no alpha or palette: composite on white like loading does
    try:
        with atomic_path(path) as tmp:
            im.save(tmp, format=fmt, **kwargs)
    except OSError as e:
        raise FaststError(f"cannot write image ({e.strerror or e})", path) from None
    return path


def find_files(folder: str | os.PathLike, suffixes: Sequence[str]) -> list[Path]:
    """All files whose suffix is in `suffixes` under `folder`, recursively, sorted for reproducibility.
    Hidden files and anything inside hidden folders (.git, .ipynb_checkpoints…) are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FaststError("no such folder" if not folder.exists() else "not a folder", folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def find_images(folder: str | os.PathLike) -> list[Path]:
    """All image files under `folder` (see `find_files`)."""
    return find_files(folder, IMAGE_EXTENSIONS)
