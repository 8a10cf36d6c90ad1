"""A fast model's output polished by N Gatys evaluations (L-BFGS on Gatys' objective, started from
that output): the model lays out the picture in milliseconds; a few evaluations then close much of
its gap to per-image optimisation, in a fraction of that method's time. `fastst infer --refine`."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fastst.images import find_images
from fastst.modelfile import file_sha256


def _candidates(places: Sequence[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for place in places:
        path = Path(place)
        if path.is_dir():
            files += find_images(path)
        elif path.is_file():
            files.append(path)
    return files


def find_style_image(model: Any, index: int, places: Sequence[str | os.PathLike]) -> Path | None:
    """The image style `index` of `model` was trained on, among the files and folders in `places`:
    the file whose SHA-256 the model stores, else one with the file name its config lists."""
    info = model.styles[index]
    names = (getattr(model, "config", None) or {}).get("style_images") or []
    wanted_name = names[index] if index < len(names) else None
    by_name = None
    for f in _candidates(places):
        if info.sha256 and file_sha256(f) == info.sha256:
            return f
        if wanted_name and f.name == wanted_name and by_name is None:
            by_name = f
    return by_name


def refine(content: torch.Tensor, stylized: torch.Tensor, style_image: str | os.PathLike | torch.Tensor,
           evaluations: int, device: str | torch.device = "auto", progress: bool = False) -> torch.Tensor:
    """`evaluations` L-BFGS evaluations of Gatys' objective (gatys' defaults) at the content's size,
    starting from `stylized`; returns the (3, H, W) image in [0, 1]."""
    from .optimize import stylize  # which refuses fewer than 1 evaluation

    result = stylize(content, [style_image], init=stylized, iterations=evaluations, size=max(content.shape[-2:]),
                     device=device, progress=progress)
    return result.image
