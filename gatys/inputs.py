"""What a run starts from: the caller's images as tensors, luminance-only copies, the checked settings,
the starting pixels, and the loss network, built once per setting."""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from fastst.colors import rgb_to_ycbcr
from fastst.errors import FaststError
from fastst.images import load_image, resize_exact, resize_long_side
from fastst.lossnet import LossNetwork

from .defaults import INITS, MAX_SEED, MAX_SIZE, MIN_PYRAMID_SIDE

Image = torch.Tensor | str | os.PathLike
_NETWORKS: dict[tuple[str, tuple[str, ...], str, str], LossNetwork] = {}


def loss_network(backbone: str, layers: Sequence[str], device: torch.device | str = "cpu",
                 pooling: str = "max") -> LossNetwork:
    """A frozen LossNetwork for these layers on `device`, memoized (sweeps reuse one per setting)."""
    key = (str(backbone), tuple(layers), str(device), pooling)
    if key not in _NETWORKS:
        _NETWORKS[key] = LossNetwork(backbone, list(layers), pooling=pooling).to(device)
    return _NETWORKS[key]


def as_image(x: Image) -> torch.Tensor:
    """A (3, H, W) float image on the CPU from a tensor (batched or not) or an image file."""
    if isinstance(x, torch.Tensor):
        t = x.detach().float().cpu()
        t = t[0] if t.dim() == 4 else t
        if t.dim() != 3 or t.shape[0] != 3:
            raise FaststError(f"expected an RGB image tensor (3, H, W), got shape {tuple(x.shape)}")
        return t.contiguous()
    return load_image(x).contiguous()


def image_list(images: Sequence[Image] | Image) -> list[Image]:
    """One image or a sequence of them, as a list."""
    return [images] if isinstance(images, (torch.Tensor, str, os.PathLike)) else list(images)


def level_images(net: LossNetwork, content: torch.Tensor, styles: Sequence[torch.Tensor], size: int,
                 style_scale: float, sources: Sequence[Image]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The content at a long side of `size` px and the style images at `style_scale` of it (never below
    MIN_PYRAMID_SIDE / 2): what `net` sees at a pyramid level, or an output, of `size` px. FaststError,
    naming the image's file (`sources`: the content, then the styles, as given: files or tensors),
    for one too small on a side for `net` (a thin panorama, or a small style scale), before any work."""
    side = max(MIN_PYRAMID_SIDE // 2, round(style_scale * size))
    c, s_imgs = resize_long_side(content, size), [resize_long_side(s, side) for s in styles]
    files = [x if isinstance(x, (str, os.PathLike)) else None for x in sources]
    net.check_size(c, files[0], f"the content image at a long side of {size} px")
    scaled = f" ('style_scale' {style_scale:g} of {size} px)" if style_scale != 1 else ""
    for image, file in zip(s_imgs, files[1:]):
        net.check_size(image, file, f"the style image at a long side of {side} px{scaled}")
    return c, s_imgs


def luminance_only(image: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Grey RGB image from the luminance; with a reference, match its luminance mean and std
    (Gatys et al., "Preserving Color in Neural Artistic Style Transfer", luminance-only transfer)."""
    y = rgb_to_ycbcr(image)[:1]
    if reference is not None:
        ry = rgb_to_ycbcr(reference)[:1]
        y = (y - y.mean()) / (y.std() + 1e-6) * ry.std() + ry.mean()
    return y.clamp(0, 1).expand(3, -1, -1).contiguous()


def check_settings(size: int, iterations: int, scales: int, style_scale: float, init: str | os.PathLike | torch.Tensor,
                   weights: Iterable[float], n_styles: int, style_blend: Sequence[float] | None, *,
                   lr: float | None = None, seed: int = 0) -> None:
    """FaststError, naming the value, for any setting of `stylize` out of its range ('size', 'style_scale',
    'lr' and 'seed' quoted as such, for the command line to name its flags)."""
    if not isinstance(size, int) or size <= 0:
        raise FaststError(f"size must be a positive number of pixels, got {size}")
    if size < MIN_PYRAMID_SIDE:
        raise FaststError(f"size {size} is too small: the long side needs at least {MIN_PYRAMID_SIDE} px")
    if size > MAX_SIZE:
        raise FaststError(f"'size' must be at most {MAX_SIZE} px, got {size}")
    if iterations <= 0:
        raise FaststError(f"iterations must be a positive number of loss evaluations, got {iterations}")
    if scales <= 0:
        raise FaststError(f"scales must be at least 1, got {scales}")
    if not (style_scale > 0 and math.isfinite(style_scale)):
        raise FaststError(f"style scale must be a positive number, got {style_scale}")
    if round(style_scale * size) > MAX_SIZE:
        raise FaststError(f"'style_scale' {style_scale:g} at 'size' {size} makes the style images "
                          f"{round(style_scale * size)} px; at most {MAX_SIZE} px")
    if lr is not None and not (lr > 0 and math.isfinite(lr)):
        raise FaststError(f"'lr' must be a positive number, got {lr}")
    if not 0 <= seed <= MAX_SEED:
        raise FaststError(f"'seed' must be from 0 to 2^32 - 1, got {seed}")
    if isinstance(init, str) and init not in INITS and not Path(init).suffix and not Path(init).is_file():
        raise FaststError(f"unknown init '{init}'; choose one of {', '.join(INITS)} or an image file")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise FaststError("content, style and tv weights must be finite and non-negative")
    if n_styles == 0:
        raise FaststError("at least one style image is needed")
    if style_blend is not None:
        if len(style_blend) != n_styles:
            raise FaststError(f"the style blend has {len(style_blend)} weights for {n_styles} style images")
        if any(not math.isfinite(w) or w < 0 for w in style_blend) or sum(style_blend) <= 0:
            raise FaststError("style blend weights must be non-negative and not all zero")


def initial_image(init: str | torch.Tensor, content: torch.Tensor, styles: Sequence[torch.Tensor],
                  blend: Sequence[float], seed: int) -> torch.Tensor:
    """The starting pixels: the content, uniform noise from `seed`, the main style or a given image,
    resized to fit."""
    h, w = content.shape[-2:]
    if isinstance(init, torch.Tensor):
        return resize_exact(init, h, w)
    if init == "noise":
        g = torch.Generator().manual_seed(int(seed))
        return torch.rand(3, h, w, generator=g)
    if init == "style":
        main = max(range(len(styles)), key=lambda i: blend[i])
        return resize_exact(styles[main], h, w)
    return content.clone()
