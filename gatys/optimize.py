"""Gatys et al. per-image style transfer: the pixels are the parameters, the loss network's features
define the objective (`fastst.objectives.gatys`). `stylize` runs the optimizers of `gatys.optimizers`
over a coarse-to-fine pyramid within a budget of loss evaluations and logs every one; the fixed scorer
and backbone-matched weights (`gatys.scoring`) make runs with different settings comparable."""
from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from fastst.colors import preserve_colors
from fastst.errors import FaststError
from fastst.hardware import cpu_has_fast_bf16, default_precision, resolve_device
from fastst.images import resize_exact
from fastst.objectives.gatys import GatysObjective, NormalizedGradient  # noqa: F401 - part of gatys' API
from fastst.objectives.settings import default_layers, default_weights

from .defaults import (  # noqa: F401 - gatys' API
    DEFAULT_BACKBONE,
    DEFAULT_CONTENT_WEIGHT,
    DEFAULT_ITERATIONS,
    DEFAULT_SIZE,
    DEFAULT_STYLE_WEIGHT,
    DEFAULT_TV_WEIGHT,
    INITS,
    LBFGS_HISTORY,
    MIN_PYRAMID_SIDE,
    NORMALIZED_LBFGS_LR,
    OPTIMIZER_LRS,
    SCORER_BACKBONE,
)
from .inputs import (
    Image,
    as_image,
    check_settings,
    image_list,
    initial_image,
    level_images,
    loss_network,
    luminance_only,
)
from .optimizers import OPTIMIZERS, Descent, Row, make_optimizer  # noqa: F401 - gatys' API
from .runlog import read_log, write_log  # noqa: F401 - gatys' API
from .scoring import matched_weights, score  # noqa: F401 - gatys' API

logger = logging.getLogger(__name__)
Objective = GatysObjective  # the objective under the name gatys has always exported


@dataclass
class StylizeResult:
    """The stylized image (3, H, W) in [0, 1] on the CPU, the per-evaluation log and timings."""

    image: torch.Tensor
    rows: list[Row]
    seconds: float
    evaluations: int
    settings: dict[str, object] = field(default_factory=dict)
    output_row: Row = field(default_factory=dict)

    @property
    def passes_per_second(self) -> float:
        """Loss evaluations (forward + backward) per second of optimisation."""
        return self.evaluations / self.seconds if self.seconds > 0 else float("nan")

    @property
    def final(self) -> Row:
        """The log row of the returned image: the lowest-loss evaluation of the finest level (before
        `original_colors`)."""
        return dict(self.output_row or (self.rows[-1] if self.rows else {}))


def bf16_default(device: torch.device) -> bool:
    """Whether bf16 autocast of the loss network is the default on `device` (`fastst.hardware`'s policy
    for optimisation: CPUs with hardware bf16, where 100 L-BFGS evaluations at 512 px took 35 % less
    time with the fp32-scored objective within 3 %)."""
    return default_precision(device, "optimization") == "bf16"


def pyramid_sizes(size: int, scales: int) -> list[int]:
    """Long sides of a coarse-to-fine pyramid ending at `size`, halving per level (never below 32 px)."""
    sizes = [size]
    for _ in range(scales - 1):
        smaller = round(sizes[0] / 2)
        if smaller < MIN_PYRAMID_SIDE:
            break
        sizes.insert(0, smaller)
    return sizes


def split_evaluations(total: int, levels: int) -> list[int]:
    """Share an evaluation budget over pyramid levels: equal parts, the remainder to the finest."""
    base = total // levels
    parts = [base] * levels
    parts[-1] += total - base * levels
    return parts


@dataclass
class _Plan:
    """The settled settings of one `stylize` call, and its images at full size."""

    content: torch.Tensor
    styles: list[torch.Tensor]
    start: str | torch.Tensor  # an init name or a starting image
    colour_source: torch.Tensor | None  # original colours: the content's chroma goes back on at the end
    blend: list[float]
    content_layers: list[str]
    style_layers: list[str]
    weights: tuple[float, float, float]
    device: torch.device
    bf16: bool
    sources: list[Image]  # the content and styles as given (files or tensors), for errors to name

    def colored(self, image: torch.Tensor) -> torch.Tensor:
        """The image on the CPU in [0, 1], with the content's colours where they are to be kept."""
        out = image.detach().float().cpu().clamp(0, 1)
        if self.colour_source is None:
            return out
        return preserve_colors(resize_exact(self.colour_source, *out.shape[-2:]), out)


def _plan(content: Image, styles: list[Image], init: str | os.PathLike | torch.Tensor, backbone: str,
          content_layers: Sequence[str] | None, style_layers: Sequence[str] | None,
          weights: tuple[float, float, float], style_blend: Sequence[float] | None, original_colors: bool,
          device: str | torch.device, bf16: bool | None) -> _Plan:
    dev = resolve_device(device)
    use_bf16 = bf16_default(dev) if bf16 is None else bool(bf16)
    if use_bf16 and dev.type == "cpu" and not cpu_has_fast_bf16():
        logger.warning("this CPU has no native bf16 (AVX-512 BF16/AMX): bf16 autocast will be much slower than fp32")
    c_layers, s_layers = default_layers(backbone)
    content_full = as_image(content)
    style_full = [as_image(s) for s in styles]
    start = init if isinstance(init, str) and init in INITS else as_image(init)  # a name or an image
    colour_source = None
    if original_colors:  # optimise luminance only, then put the content's chroma back
        style_full = [luminance_only(s, content_full) for s in style_full]
        colour_source, content_full = content_full, luminance_only(content_full)
        start = luminance_only(start) if isinstance(start, torch.Tensor) else start
    return _Plan(content_full, style_full, start, colour_source,
                 list(style_blend) if style_blend is not None else [1.0] * len(style_full),
                 list(content_layers) if content_layers else list(c_layers),
                 list(style_layers) if style_layers else list(s_layers), weights, dev, use_bf16, [content, *styles])


def _descend(plan: _Plan, net: torch.nn.Module, sizes: list[int], iterations: int, style_scale: float,
             optimizer: str, lr: float | None, seed: int, normalize_gradients: bool, lbfgs_history: int,
             on_row: Callable[[Row, torch.Tensor], None], progress: bool) -> tuple[torch.Tensor, list[Row], float, Row]:
    """Every pyramid level in turn, each starting from the last one's result; returns the final pixels,
    the log rows, the learning rate used and the returned image's row."""
    rows: list[Row] = []
    image: torch.Tensor | None = None
    used_lr, output_row = float("nan"), {}
    start = time.perf_counter()
    with tqdm(total=iterations, desc="gatys", unit="eval", file=sys.stderr, disable=not progress,
              dynamic_ncols=True, leave=False) as bar:
        for level_size, budget in zip(sizes, split_evaluations(iterations, len(sizes))):
            c, s_imgs = level_images(net, plan.content, plan.styles, level_size, style_scale, plan.sources)
            objective = GatysObjective(net, c.to(plan.device), [s.to(plan.device) for s in s_imgs],
                                       plan.content_layers, plan.style_layers,
                                       plan.blend, *plan.weights, plan.bf16, normalize_gradients)
            if image is None:
                image = initial_image(plan.start, c, plan.styles, plan.blend, seed)
            else:
                image = resize_exact(image.detach().cpu().clamp(0, 1), *c.shape[-2:])
            pixels = image.to(plan.device).clone(memory_format=torch.contiguous_format).requires_grad_(True)
            if budget > 0:
                used_lr, output_row = Descent(objective, pixels, optimizer, lr, budget, rows, start, bar, on_row,
                                              lbfgs_history).run()
            image = pixels.detach()
    return image, rows, used_lr, output_row


def _check_run_options(optimizer: str, lbfgs_history: int, snapshot_every: int) -> None:
    """One-line errors for an unknown optimizer, an empty L-BFGS history or a negative snapshot interval."""
    if not isinstance(lbfgs_history, int) or lbfgs_history < 1:
        raise FaststError(f"the L-BFGS history must be at least 1 step, got {lbfgs_history}")
    if snapshot_every < 0:
        raise FaststError(f"the snapshot interval must be ≥ 0 evaluations, got {snapshot_every}")
    if optimizer not in OPTIMIZERS:
        raise FaststError(f"unknown optimizer '{optimizer}'; choose one of {', '.join(OPTIMIZERS)}")


def _row_handler(colored: Callable[[torch.Tensor], torch.Tensor], callback: Callable[[Row], None] | None,
                 snapshot_every: int, snapshot: Callable[[int, torch.Tensor], None] | None
                 ) -> Callable[[Row, torch.Tensor], None]:
    """What runs after each evaluation: the row to `callback`, every `snapshot_every`-th image to `snapshot`."""
    def on_row(row: Row, image: torch.Tensor) -> None:
        if snapshot is not None and snapshot_every and int(row["iteration"]) % snapshot_every == 0:
            snapshot(int(row["iteration"]), colored(image))
        if callback is not None:
            callback(row)
    return on_row


def stylize(content: Image, styles: Sequence[Image] | Image,
            *, backbone: str = DEFAULT_BACKBONE, content_layers: Sequence[str] | None = None,
            style_layers: Sequence[str] | None = None, content_weight: float | None = None,
            style_weight: float | None = None, tv_weight: float | None = None,
            style_blend: Sequence[float] | None = None, optimizer: str = "lbfgs", lr: float | None = None,
            iterations: int = DEFAULT_ITERATIONS, init: str | os.PathLike | torch.Tensor = "content",
            size: int = DEFAULT_SIZE,
            style_scale: float = 1.0, original_colors: bool = False, scales: int = 1, seed: int = 0,
            device: str | torch.device = "auto", bf16: bool | None = None, progress: bool = False,
            log: str | os.PathLike | None = None, pooling: str = "max",
            callback: Callable[[Row], None] | None = None,
            snapshot_every: int = 0, snapshot: Callable[[int, torch.Tensor], None] | None = None,
            normalize_gradients: bool = False, lbfgs_history: int = LBFGS_HISTORY) -> StylizeResult:
    """Stylize one content image with one or more (blended) style images by optimising its pixels.

    `iterations` counts loss evaluations (forward + backward) for every optimizer, L-BFGS included,
    so runs are comparable by work done. Images are (3, H, W) tensors in [0, 1] or file paths.
    `init` is "content", "noise", "style" or a starting image (a file or a tensor, resized to the
    output; neural-style's -init image: e.g. an earlier result, or a fast model's output to refine).
    `pooling` "avg" replaces the loss network's max pooling (Gatys et al. found it slightly more
    appealing). `snapshot(evaluation, image)` receives the image as it stands (colours restored
    with `original_colors`) after every `snapshot_every` evaluations, for progress pictures.
    `normalize_gradients` (neural-style's -normalize_gradients) divides each loss layer's gradient by
    its L1 norm before weighting it, which balances the layers whatever their scale; the result is
    then the last evaluated image, as the gradient no longer descends the loss. Weights left None
    take `fastst.objectives.settings.default_weights(normalize_gradients)`. `lbfgs_history`: the steps
    L-BFGS remembers (neural-style's -lbfgs_num_correction), two image-sized fp32 vectors each.
    """
    weights = tuple(d if w is None else w for w, d in zip(
        (content_weight, style_weight, tv_weight), default_weights(normalize_gradients)))
    style_list = image_list(styles)
    check_settings(size, iterations, scales, style_scale, init, weights, len(style_list), style_blend, lr=lr,
                   seed=seed)
    _check_run_options(optimizer, lbfgs_history, snapshot_every)
    plan = _plan(content, style_list, init, backbone, content_layers, style_layers, weights, style_blend,
                 original_colors, device, bf16)
    net = loss_network(backbone, list(dict.fromkeys(plan.content_layers + plan.style_layers)), plan.device, pooling)
    on_row = _row_handler(plan.colored, callback, snapshot_every, snapshot)
    sizes = pyramid_sizes(size, scales)
    level_images(net, plan.content, plan.styles, sizes[0], style_scale, plan.sources)  # fit the coarsest level
    started = time.perf_counter()
    image, rows, used_lr, output_row = _descend(plan, net, sizes, iterations, style_scale, optimizer, lr, seed,
                                                normalize_gradients, lbfgs_history, on_row, progress)
    seconds = time.perf_counter() - started
    settings = dict(backbone=backbone, pooling=pooling, content_layers=plan.content_layers,
                    style_layers=plan.style_layers, content_weight=weights[0], style_weight=weights[1],
                    tv_weight=weights[2], style_blend=plan.blend, optimizer=optimizer, lr=used_lr,
                    iterations=iterations, init="image" if isinstance(init, torch.Tensor) else str(init),
                    size=size, style_scale=style_scale, original_colors=original_colors, scales=len(sizes), seed=seed,
                    device=str(plan.device), bf16=plan.bf16, normalize_gradients=bool(normalize_gradients),
                    lbfgs_history=lbfgs_history)
    result = StylizeResult(plan.colored(image), rows, seconds, len(rows), settings, dict(output_row))
    if log is not None:
        write_log(rows, log)
    return result
