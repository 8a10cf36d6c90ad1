"""Gatys et al. per-image style transfer: the pixels are the parameters, the loss network's
features define the objective. Pieces: the objective (targets computed once), an optimizer
registry whose budget is counted in loss evaluations, a coarse-to-fine pyramid, a CSV log,
and a fixed scorer that makes runs with different settings comparable."""
from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch
from tqdm import tqdm

from fastst.colors import preserve_colors, rgb_to_ycbcr
from fastst.errors import FaststError
from fastst.hardware import cpu_has_fast_bf16 as cpu_has_native_bf16, resolve_device  # noqa: F401
from fastst.images import atomic_path, load_image, resize_exact, resize_long_side
from fastst.losses import blended_grams, content_loss, gram_matrix, style_loss, total_variation
from fastst.lossnet import LossNetwork, default_layers

logger = logging.getLogger(__name__)

from .defaults import (CSV_COLUMNS, DEFAULT_BACKBONE, DEFAULT_CONTENT_WEIGHT, DEFAULT_ITERATIONS,  # noqa: F401
                       DEFAULT_SIZE, DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT, DEVICES, INITS, LBFGS_HISTORY,
                       MIN_PYRAMID_SIDE, NORMALIZED_CONTENT_WEIGHT, NORMALIZED_LBFGS_LR, NORMALIZED_STYLE_WEIGHT,
                       NORMALIZED_TV_WEIGHT, OPTIMIZER_LRS, SCORER_BACKBONE, SGD_AUTO_STEP, default_weights)


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build one optimizer over the image pixels, and its default learning rate (pixels in
    [0, 1]). lr=None means 'auto': set from the first gradient so that the first step moves the
    average pixel by SGD_AUTO_STEP, because plain SGD's useful lr scales with the loss magnitude,
    which changes with image size and weights; the adaptive methods are invariant to that scale."""

    build: Callable[[list[torch.Tensor], float], torch.optim.Optimizer]
    lr: float | None


def _lbfgs(params: list[torch.Tensor], lr: float, line_search: bool = True,
           history: int = LBFGS_HISTORY) -> torch.optim.Optimizer:
    # No early stopping: the evaluation budget alone ends a run, so optimizers are compared on equal work.
    # The strong-Wolfe line search is needed: from the content image the quartic style loss is concave
    # along the gradient, L-BFGS gets no curvature pair and an unsearched unit step diverges. Normalised
    # gradients (neural-style's) are no loss's gradient, so a search on the loss stalls (100 evaluations
    # barely moved the style term): fixed steps there, as neural-style takes, of NORMALIZED_LBFGS_LR.
    return torch.optim.LBFGS(params, lr=lr, max_iter=1, history_size=history, tolerance_grad=-1.0,
                             tolerance_change=-1.0, line_search_fn="strong_wolfe" if line_search else None)


_BUILDERS: dict[str, Callable[[list[torch.Tensor], float], torch.optim.Optimizer]] = {
    "sgd": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
    "adadelta": lambda p, lr: torch.optim.Adadelta(p, lr=lr),
    "adagrad": lambda p, lr: torch.optim.Adagrad(p, lr=lr),
    "adam": lambda p, lr: torch.optim.Adam(p, lr=lr),
    "rmsprop": lambda p, lr: torch.optim.RMSprop(p, lr=lr),
    "lbfgs": _lbfgs,
}
OPTIMIZERS: dict[str, OptimizerSpec] = {name: OptimizerSpec(_BUILDERS[name], lr) for name, lr in OPTIMIZER_LRS.items()}


def bf16_default(device: torch.device) -> bool:
    """bf16 autocast of the loss network on CPUs that compute bf16 in hardware (AVX512-BF16 / AMX):
    there 100 L-BFGS evaluations at 512 px took 35 % less time (Gatys' layers) with the fp32-scored
    objective within 3 %; elsewhere fp32 (emulated bf16 was ~14x slower; GPUs are not yet measured)."""
    return device.type == "cpu" and cpu_has_native_bf16()


def make_optimizer(name: str, params: list[torch.Tensor], lr: float | None = None,
                   normalized_gradients: bool = False, lbfgs_history: int = LBFGS_HISTORY) -> torch.optim.Optimizer:
    """An optimizer from the registry; lr=None takes its default. With `normalized_gradients`
    L-BFGS takes neural-style's fixed steps instead of a line search on the loss; `lbfgs_history`
    is how many steps it remembers."""
    spec = OPTIMIZERS.get(name)
    if spec is None:
        raise FaststError(f"unknown optimizer '{name}'; choose one of {', '.join(OPTIMIZERS)}")
    if lr is not None and not (lr > 0 and math.isfinite(lr)):
        raise FaststError(f"learning rate must be a positive number, got {lr}")
    if name == "lbfgs":
        rate = (NORMALIZED_LBFGS_LR if normalized_gradients else spec.lr or 1.0) if lr is None else lr
        return _lbfgs(params, rate, line_search=not normalized_gradients, history=lbfgs_history)
    return spec.build(params, (spec.lr or 1.0) if lr is None else lr)


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


_NETWORKS: dict[tuple[str, tuple[str, ...], str, str], LossNetwork] = {}


def loss_network(backbone: str, layers: Sequence[str], device: torch.device | str = "cpu",
                 pooling: str = "max") -> LossNetwork:
    """A frozen LossNetwork for these layers on `device`, memoized (sweeps reuse one per setting)."""
    key = (str(backbone), tuple(layers), str(device), pooling)
    if key not in _NETWORKS:
        _NETWORKS[key] = LossNetwork(backbone, list(layers), pooling=pooling).to(device)
    return _NETWORKS[key]


class Objective:
    """α·content + β·style + tv_weight·tv for one content image and blended style targets.

    content: Σ over content layers of Σ (F − P)²; style: Σ_l (1/|L|) · ¼ Σ (G_l − A_l)² with Gram
    matrices normalised by C·H·W (= 1/(4N²M²) Σ (G_raw − A_raw)², Gatys' E_l); tv: Σ |neighbour
    differences| of the [0, 1] image. Targets are computed once, without gradients. With
    `normalize_gradients` the values are the same, but each layer's gradient reaches the features
    with L1 norm α or β/|L| (neural-style's -normalize_gradients).
    """

    def __init__(self, net: LossNetwork, content: torch.Tensor, styles: Sequence[torch.Tensor],
                 content_layers: Sequence[str], style_layers: Sequence[str],
                 style_blend: Sequence[float] | None = None, content_weight: float = DEFAULT_CONTENT_WEIGHT,
                 style_weight: float = DEFAULT_STYLE_WEIGHT, tv_weight: float = DEFAULT_TV_WEIGHT,
                 bf16: bool = False, normalize_gradients: bool = False) -> None:
        self.net = net
        self.normalize_gradients = bool(normalize_gradients)
        self.content_layers = list(content_layers)
        self.style_layers = list(style_layers)
        self.weights = (float(content_weight), float(style_weight), float(tv_weight))
        self.bf16 = bool(bf16)
        self.layer_weights = {name: 1.0 / len(self.style_layers) for name in self.style_layers}
        blend = list(style_blend) if style_blend is not None else [1.0] * len(styles)
        with torch.no_grad():
            feats = self.features(_batch(content))
            self.content_targets = {n: feats[n].detach().float() for n in self.content_layers}
            grams = []
            for style in styles:
                sf = self.features(_batch(style))
                grams.append({n: gram_matrix(sf[n]).detach() for n in self.style_layers})
        self.style_targets = blended_grams(grams, blend)

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss-network activations, under bf16 autocast when enabled (the image stays fp32)."""
        device = images.device.type
        ctx = torch.autocast(device, dtype=torch.bfloat16) if self.bf16 and device in ("cpu", "cuda") \
            else contextlib.nullcontext()
        with ctx:
            return self.net(images)

    def terms(self, image: torch.Tensor, per_layer: bool = False) -> dict[str, torch.Tensor]:
        """The unweighted content, style and tv terms and the weighted total, as 0-d tensors;
        `per_layer` adds each style layer's share of the style term as "style_<layer>"."""
        x = _batch(image)
        feats = self.features(x)
        a, b, t = self.weights
        content_feats, style_feats = feats, feats
        if self.normalize_gradients and torch.is_grad_enabled():  # each layer's loss gets its own branch
            content_feats = {n: _NormalizedGradient.apply(feats[n], a) for n in self.content_layers}
            style_feats = {n: _NormalizedGradient.apply(feats[n], b * self.layer_weights[n]) for n in self.style_layers}
        c = sum(content_loss(content_feats[n], self.content_targets[n], "sum") for n in self.content_layers)
        shares = {n: style_loss({n: style_feats[n]}, {n: self.style_targets[n]}, self.layer_weights,
                                reduction="sum", scale=0.25) for n in self.style_layers}
        s = sum(shares.values())
        tv = total_variation(x, "sum")
        extra = {f"style_{n}": v for n, v in shares.items()} if per_layer else {}
        return {"content": c, "style": s, "tv": tv, "total": a * c + b * s + t * tv, **extra}


class _NormalizedGradient(torch.autograd.Function):
    """Identity forward; the backward rescales the incoming gradient to L1 norm `weight`
    (jcjohnson/neural-style's -normalize_gradients: each loss layer's gradient divided by its
    own L1 norm, then multiplied by that loss's weight)."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, weight: float) -> torch.Tensor:  # noqa: ANN001
        ctx.weight = weight
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        norm = grad.abs().sum(dtype=torch.float32) + 1e-8  # a tensor: no device sync on a GPU
        return grad * (ctx.weight / norm).to(grad.dtype), None


def _batch(image: torch.Tensor) -> torch.Tensor:
    return image if image.dim() == 4 else image.unsqueeze(0)


@dataclass
class StylizeResult:
    """The stylized image (3, H, W) in [0, 1] on the CPU, the per-evaluation log and timings."""

    image: torch.Tensor
    rows: list[dict[str, float]]
    seconds: float
    evaluations: int
    settings: dict[str, object] = field(default_factory=dict)
    output_row: dict[str, float] = field(default_factory=dict)

    @property
    def passes_per_second(self) -> float:
        """Loss evaluations (forward + backward) per second of optimisation."""
        return self.evaluations / self.seconds if self.seconds > 0 else float("nan")

    @property
    def final(self) -> dict[str, float]:
        """The log row of the returned image: the lowest-loss evaluation of the finest level (before
        --original-colors)."""
        return dict(self.output_row or (self.rows[-1] if self.rows else {}))


class _BudgetSpent(Exception):
    """Raised inside a closure that would exceed the evaluation budget (L-BFGS line searches)."""


def _as_image(x: torch.Tensor | str | os.PathLike) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach().float().cpu()
        t = t[0] if t.dim() == 4 else t
        if t.dim() != 3 or t.shape[0] != 3:
            raise FaststError(f"expected an RGB image tensor (3, H, W), got shape {tuple(x.shape)}")
        return t.contiguous()
    return load_image(x).contiguous()


def _luminance_only(image: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Grey RGB image from the luminance; with a reference, match its luminance mean and std
    (Gatys et al., "Preserving Color in Neural Artistic Style Transfer", luminance-only transfer)."""
    y = rgb_to_ycbcr(image)[:1]
    if reference is not None:
        ry = rgb_to_ycbcr(reference)[:1]
        y = (y - y.mean()) / (y.std() + 1e-6) * ry.std() + ry.mean()
    return y.clamp(0, 1).expand(3, -1, -1).contiguous()


def _check_settings(size: int, iterations: int, scales: int, style_scale: float, init: str | os.PathLike | torch.Tensor,
                    weights: Iterable[float], n_styles: int, style_blend: Sequence[float] | None) -> None:
    if not isinstance(size, int) or size <= 0:
        raise FaststError(f"size must be a positive number of pixels, got {size}")
    if size < MIN_PYRAMID_SIDE:
        raise FaststError(f"size {size} is too small: the long side needs at least {MIN_PYRAMID_SIDE} px")
    if iterations <= 0:
        raise FaststError(f"iterations must be a positive number of loss evaluations, got {iterations}")
    if scales <= 0:
        raise FaststError(f"scales must be at least 1, got {scales}")
    if not (style_scale > 0 and math.isfinite(style_scale)):
        raise FaststError(f"style scale must be a positive number, got {style_scale}")
    if isinstance(init, str) and init not in INITS and not Path(init).suffix and not Path(init).is_file():
        raise FaststError(f"unknown init '{init}'; choose one of {', '.join(INITS)} or an image file")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise FaststError("content, style and tv weights must be finite and non-negative")
    if n_styles == 0:
        raise FaststError("at least one style image is needed")
    if style_blend is not None:
        if len(style_blend) != n_styles:
            raise FaststError(f"--style-blend has {len(style_blend)} weights for {n_styles} style images")
        if any(not math.isfinite(w) or w < 0 for w in style_blend) or sum(style_blend) <= 0:
            raise FaststError("style blend weights must be non-negative and not all zero")


def stylize(content: torch.Tensor | str | os.PathLike,
            styles: Sequence[torch.Tensor | str | os.PathLike] | torch.Tensor | str | os.PathLike,
            *, backbone: str = DEFAULT_BACKBONE, content_layers: Sequence[str] | None = None,
            style_layers: Sequence[str] | None = None, content_weight: float | None = None,
            style_weight: float | None = None, tv_weight: float | None = None,
            style_blend: Sequence[float] | None = None, optimizer: str = "lbfgs", lr: float | None = None,
            iterations: int = DEFAULT_ITERATIONS, init: str | os.PathLike | torch.Tensor = "content",
            size: int = DEFAULT_SIZE,
            style_scale: float = 1.0, original_colors: bool = False, scales: int = 1, seed: int = 0,
            device: str | torch.device = "auto", bf16: bool | None = None, progress: bool = False,
            log: str | os.PathLike | None = None, pooling: str = "max",
            callback: Callable[[dict[str, float]], None] | None = None,
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
    take `gatys.defaults.default_weights(normalize_gradients)`. `lbfgs_history`: the steps L-BFGS
    remembers (neural-style's -lbfgs_num_correction), two image-sized fp32 vectors each.
    """
    content_weight, style_weight, tv_weight = (d if w is None else w for w, d in zip(
        (content_weight, style_weight, tv_weight), default_weights(normalize_gradients)))
    style_list = [styles] if isinstance(styles, (torch.Tensor, str, os.PathLike)) else list(styles)
    _check_settings(size, iterations, scales, style_scale, init, (content_weight, style_weight, tv_weight),
                    len(style_list), style_blend)
    if not isinstance(lbfgs_history, int) or lbfgs_history < 1:
        raise FaststError(f"the L-BFGS history must be at least 1 step, got {lbfgs_history}")
    if snapshot_every < 0:
        raise FaststError(f"the snapshot interval must be ≥ 0 evaluations, got {snapshot_every}")
    if optimizer not in OPTIMIZERS:
        raise FaststError(f"unknown optimizer '{optimizer}'; choose one of {', '.join(OPTIMIZERS)}")
    dev = resolve_device(device)
    use_bf16 = bf16_default(dev) if bf16 is None else bool(bf16)
    if use_bf16 and dev.type == "cpu" and not cpu_has_native_bf16():
        logger.warning("this CPU has no native bf16 (AVX-512 BF16/AMX): bf16 autocast will be much slower than fp32")
    c_layers, s_layers = default_layers(backbone)
    c_layers = list(content_layers) if content_layers else list(c_layers)
    s_layers = list(style_layers) if style_layers else list(s_layers)
    content_full = _as_image(content)
    style_full = [_as_image(s) for s in style_list]
    starting = init if isinstance(init, str) and init in INITS else _as_image(init)  # a name or an image
    net = loss_network(backbone, list(dict.fromkeys(c_layers + s_layers)), dev, pooling)
    blend = list(style_blend) if style_blend is not None else [1.0] * len(style_full)
    if original_colors:  # optimise luminance only, then put the content's chroma back
        style_full = [_luminance_only(s, content_full) for s in style_full]
        colour_source, content_full = content_full, _luminance_only(content_full)
        starting = _luminance_only(starting) if isinstance(starting, torch.Tensor) else starting

    def colored(image: torch.Tensor) -> torch.Tensor:
        out = image.detach().float().cpu().clamp(0, 1)
        return preserve_colors(resize_exact(colour_source, *out.shape[-2:]), out) if original_colors else out

    def on_row(row: dict[str, float], image: torch.Tensor) -> None:
        if snapshot is not None and snapshot_every and int(row["iteration"]) % snapshot_every == 0:
            snapshot(int(row["iteration"]), colored(image))
        if callback is not None:
            callback(row)

    sizes = pyramid_sizes(size, scales)
    budgets = split_evaluations(iterations, len(sizes))
    rows: list[dict[str, float]] = []
    image: torch.Tensor | None = None
    used_lr, output_row = float("nan"), {}
    start = time.perf_counter()
    bar = tqdm(total=iterations, desc="gatys", unit="eval", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, leave=False)
    try:
        for level_size, budget in zip(sizes, budgets):
            c = resize_long_side(content_full, level_size)
            h, w = c.shape[-2:]
            style_side = max(MIN_PYRAMID_SIDE // 2, round(style_scale * level_size))
            s_imgs = [resize_long_side(s, style_side).to(dev) for s in style_full]
            objective = Objective(net, c.to(dev), s_imgs, c_layers, s_layers, blend,
                                  content_weight, style_weight, tv_weight, use_bf16, normalize_gradients)
            if image is None:
                image = _initial_image(starting, c, style_full, blend, seed)
            else:
                image = resize_exact(image.detach().cpu().clamp(0, 1), h, w)
            pixels = image.to(dev).clone(memory_format=torch.contiguous_format).requires_grad_(True)
            if budget > 0:
                used_lr, output_row = _optimise(objective, pixels, optimizer, lr, budget, rows, start, bar, on_row,
                                                lbfgs_history)
            image = pixels.detach()
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    out = colored(image)
    settings = dict(backbone=backbone, pooling=pooling, content_layers=c_layers, style_layers=s_layers,
                    content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
                    style_blend=blend, optimizer=optimizer, lr=used_lr,
                    iterations=iterations, init="image" if isinstance(init, torch.Tensor) else str(init),
                    size=size, style_scale=style_scale,
                    original_colors=original_colors, scales=len(sizes), seed=seed, device=str(dev), bf16=use_bf16,
                    normalize_gradients=bool(normalize_gradients), lbfgs_history=lbfgs_history)
    result = StylizeResult(out, rows, seconds, len(rows), settings, dict(output_row))
    if log is not None:
        write_log(rows, log)
    return result


def _initial_image(init: str | torch.Tensor, content: torch.Tensor, styles: Sequence[torch.Tensor],
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


def _optimise(objective: Objective, pixels: torch.Tensor, name: str, lr: float | None, budget: int,
              rows: list[dict[str, float]], start: float, bar: tqdm,
              callback: Callable[[dict[str, float], torch.Tensor], None],
              lbfgs_history: int = LBFGS_HISTORY) -> tuple[float, dict[str, float]]:
    """Spend exactly `budget` loss evaluations on `pixels` with the named optimizer, then leave in
    `pixels` the evaluated image with the lowest loss (at a budget's end L-BFGS's line search may hold
    an older, worse point). Returns the lr used and that image's log row."""
    opt = make_optimizer(name, [pixels], lr, objective.normalize_gradients, lbfgs_history)
    auto_lr = lr is None and OPTIMIZERS[name].lr is None
    # L-BFGS sees the loss times 1/mean|first gradient|: the minimiser is unchanged, but torch's
    # scale-dependent fallbacks (the first step, and a unit step along -g when no curvature pair is
    # accepted yet, which happens where the quartic style loss is concave) become steps of about one
    # pixel range instead of ~1e8, which overflowed to inf/NaN with Caffe-scale features.
    normalise = name == "lbfgs" and not objective.normalize_gradients
    # L-BFGS cannot clamp between steps, so it sees the image clamp(x) with the gradient passed straight
    # through: the logged loss is the output's, and at 256 px / 150 evaluations the saved image scored
    # 30% lower than optimising x unconstrained and clamping at the end (sigmoid(x) was within 2%, but
    # freezes saturated pixels). The first-order optimizers clamp x after every step instead.
    straight_through = name == "lbfgs"
    loss_scale = 1.0
    spent = 0
    best = pixels.detach().clone()
    best_total = math.inf
    best_row: dict[str, float] = {}

    def closure() -> torch.Tensor:
        nonlocal spent, best_total, best_row, loss_scale
        if spent >= budget:
            raise _BudgetSpent
        opt.zero_grad(set_to_none=False)
        image = pixels + (pixels.clamp(0, 1) - pixels).detach() if straight_through else pixels
        terms = objective.terms(image)
        (terms["total"] * loss_scale).backward()
        if normalise and spent == 0:
            loss_scale = 1.0 / max(float(pixels.grad.abs().mean()), 1e-30)
            pixels.grad.mul_(loss_scale)
        if auto_lr and spent == 0:
            opt.param_groups[0]["lr"] = SGD_AUTO_STEP / max(float(pixels.grad.abs().mean()), 1e-30)
        spent += 1
        row = {"iteration": len(rows) + 1, "seconds": time.perf_counter() - start,
               **{k: float(v.detach()) for k, v in terms.items()}}
        if not math.isfinite(row["total"]):
            raise FaststError(f"the loss became {row['total']} at evaluation {row['iteration']}; "
                              f"lower the learning rate (--lr) or the loss weights")
        rows.append(row)
        if row["total"] < best_total or objective.normalize_gradients:  # normalised: not descending the total
            best_total, best_row = row["total"], row
            best.copy_(image.detach())
        bar.update(1)
        bar.set_postfix(loss=f"{row['total']:.4g}", refresh=False)
        callback(row, image)
        return terms["total"].detach() * loss_scale

    if name == "lbfgs":
        while spent < budget:
            before = spent
            left = budget - spent
            opt.param_groups[0]["max_iter"] = left
            opt.param_groups[0]["max_eval"] = left
            try:
                opt.step(closure)
            except _BudgetSpent:  # stopped inside a line search
                break
            if spent == before:
                break
    else:
        for _ in range(budget):
            opt.step(closure)
            with torch.no_grad():
                pixels.clamp_(0, 1)
    if best_row:
        with torch.no_grad():
            pixels.copy_(best)
    return float(opt.param_groups[0]["lr"]), best_row


def write_log(rows: Sequence[Mapping[str, float]], path: str | os.PathLike) -> Path:
    """Write the per-evaluation rows as CSV (iteration, seconds, content, style, tv, total), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for r in rows:
                writer.writerow([int(r["iteration"])] + [f"{float(r[k]):.6g}" for k in CSV_COLUMNS[1:]])
    return path


def read_log(path: str | os.PathLike) -> list[dict[str, float]]:
    """Read a log written by write_log back into rows."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: (int(v) if k == "iteration" else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]


def matched_weights(backbone: str, content: torch.Tensor | str | os.PathLike,
                    style: torch.Tensor | str | os.PathLike, content_layers: Sequence[str] | None = None,
                    style_layers: Sequence[str] | None = None, size: int = 256,
                    device: str | torch.device = "cpu") -> dict[str, float]:
    """Weights giving `backbone` (and layers) the same content:style:tv balance as the defaults give
    vgg16-caffe, from the content and style terms both networks measure on one seeded noise image.
    Needed because feature scales differ: torchvision-normalised inputs give ~1/30 of Caffe's features,
    so content terms shrink ~1e3x and style terms ~1e6x."""
    c_img = resize_long_side(_as_image(content), size)
    s_img = resize_long_side(_as_image(style), size)
    noise = torch.rand(c_img.shape, generator=torch.Generator().manual_seed(0))
    dev = resolve_device(device)

    def terms(bb: str, cl: Sequence[str] | None, sl: Sequence[str] | None) -> tuple[float, float]:
        dc, ds = default_layers(bb)
        cl, sl = list(cl or dc), list(sl or ds)
        net = loss_network(bb, list(dict.fromkeys(cl + sl)), dev)
        objective = Objective(net, c_img.to(dev), [s_img.to(dev)], cl, sl, None, 1.0, 1.0, 0.0)
        with torch.no_grad():
            t = objective.terms(noise.to(dev))
        return float(t["content"]), float(t["style"])

    ref_c, ref_s = terms(SCORER_BACKBONE, None, None)
    c, s = terms(backbone, content_layers, style_layers)
    if min(ref_c, ref_s, c, s) <= 0:
        raise FaststError(f"cannot match weights for backbone {backbone}: a loss term is zero on the probe image")
    content_ratio = c / ref_c  # how much larger this backbone's content term is
    return {"content_weight": DEFAULT_CONTENT_WEIGHT,
            "style_weight": DEFAULT_STYLE_WEIGHT * content_ratio * ref_s / s,
            "tv_weight": DEFAULT_TV_WEIGHT * content_ratio}


def score(content: torch.Tensor | str | os.PathLike,
          styles: Sequence[torch.Tensor | str | os.PathLike] | torch.Tensor | str | os.PathLike,
          output: torch.Tensor | str | os.PathLike, style_blend: Sequence[float] | None = None,
          style_scale: float = 1.0, device: str | torch.device = "cpu", per_layer: bool = False) -> dict[str, float]:
    """Score an output under one fixed objective (vgg16-caffe, Gatys' default layers and weights,
    fp32) at the output's size, so results of any backbone, layers, weights or method compare;
    `per_layer` adds each style layer's share of the style term as "style_<layer>"."""
    out = _as_image(output)
    style_list = [styles] if isinstance(styles, (torch.Tensor, str, os.PathLike)) else list(styles)
    h, w = out.shape[-2:]
    dev = resolve_device(device)
    c_layers, s_layers = default_layers(SCORER_BACKBONE)
    net = loss_network(SCORER_BACKBONE, list(dict.fromkeys(c_layers + s_layers)), dev)
    c = resize_exact(_as_image(content), h, w)
    side = max(MIN_PYRAMID_SIDE // 2, round(style_scale * max(h, w)))
    s_imgs = [resize_long_side(_as_image(s), side).to(dev) for s in style_list]
    objective = Objective(net, c.to(dev), s_imgs, c_layers, s_layers, style_blend, bf16=False)
    with torch.no_grad():
        return {k: float(v) for k, v in objective.terms(out.to(dev), per_layer).items()}
