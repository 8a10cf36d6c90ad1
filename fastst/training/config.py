"""What defines a training run: `TrainConfig` (saved into the model file, and the source of `fastst
train`'s flags, their help and defaults) and the presets, as data. Torch-free, so the command line's
help comes at once."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import FaststError
from ..objectives.settings import (
    PERCEPTUAL_CONTENT_LAYERS,
    PERCEPTUAL_CONTENT_WEIGHT,
    PERCEPTUAL_STYLE_LAYERS,
    PERCEPTUAL_STYLE_WEIGHT,
    PERCEPTUAL_TV_WEIGHT,
)

LR_SCHEDULES = ("constant", "cosine")
DEFAULT_CROP_SCALE = (0.35, 1.0)  # area fraction of a photo that a random training crop covers
MAX_WORKERS = 256  # data-loader processes: far above what a machine runs well, far below a fork bomb
MIN_IMAGE_SIZE = 32
MIN_STYLE_SIZE = 16  # the network's smallest input side
# The largest training crop and style-image side: far above real use (the recipes train at 128-256 px with
# styles at 256-512) and far below sides whose activations alone need hundreds of GB; Core ML's largest input
# side too. A batch holds at most this square's pixels (batch size × image size²: 1024 crops at 256 px).
MAX_IMAGE_SIZE = 8192
MAX_BATCH_PIXELS = MAX_IMAGE_SIZE ** 2
MAX_SEED = 2 ** 32 - 1  # the largest seed Lightning (numpy) takes


def _sizes(text: str) -> tuple[int, ...]:
    """'256,512' -> (256, 512); argparse reports the ValueError of anything else."""
    return tuple(int(v) for v in text.split(",") if v.strip())


def _strengths(text: str) -> tuple[float, ...]:
    """'0.25,0.5' -> (0.25, 0.5); argparse reports the ValueError of anything else."""
    return tuple(float(v) for v in text.split(",") if v.strip())


def strength_row_style_scale(s: float) -> float:
    """The style weight, as a fraction of the run's, that a strength row at strength s trains with:
    10^(2s − 2.5), so 0.25, 0.5, 0.75 train at 1 %, 3.2 % and 10 %. Chosen on the bundled model, whose
    rows at those fractions keep the photo's subject with the painting's strokes (docs/controls.md)."""
    return 10.0 ** (2.0 * s - 2.5)


def setting(default: Any, help: str, *, has_flag: bool = True, **flag: Any) -> Any:  # noqa: A002 - argparse's name
    """A TrainConfig field with its help text and the argparse settings of its command-line flag."""
    return field(default=default, metadata={"help": help, "flag": flag if has_flag else None})


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved into the model file."""

    image_size: int = setting(256, "training crop size in px", type=int)
    style_size: int | None = setting(None, "long side of the style images [2 × image size]", type=int)
    crop_scale: tuple[float, float] = setting(
        DEFAULT_CROP_SCALE, "area fraction of a photo each random crop covers; raise MIN when the model will see "
        "whole photos at about the training size (objects then look the same size)",
        type=float, nargs=2, metavar=("MIN", "MAX"))
    batch_size: int = setting(4, "photos per optimizer step", type=int)
    steps: int = setting(40000, "optimizer steps", type=int)
    lr: float = setting(1e-3, "Adam learning rate", type=float)
    lr_schedule: str = setting("constant", "constant, or cosine: decay the rate to zero over --steps (for "
                               "fine-tuning an --init model)", choices=LR_SCHEDULES)
    content_weight: float = setting(PERCEPTUAL_CONTENT_WEIGHT, "weight of the content term", type=float)
    style_weight: float = setting(PERCEPTUAL_STYLE_WEIGHT, "weight of the style term", type=float)
    tv_weight: float = setting(PERCEPTUAL_TV_WEIGHT, "weight of the total-variation term", type=float)
    content_layers: tuple[str, ...] = setting(PERCEPTUAL_CONTENT_LAYERS, "loss-network layers, comma-separated")
    style_layers: tuple[str, ...] = setting(PERCEPTUAL_STYLE_LAYERS,
                                            "loss-network layers, comma-separated, each NAME or NAME:WEIGHT")
    style_layer_weights: tuple[float, ...] | None = setting(None, "one weight per style layer; None: all 1",
                                                            has_flag=False)
    backbone: str = setting("vgg16-caffe", "loss network: vgg16-caffe (offline), vgg16, vgg19 or a weights file")
    seed: int = setting(0, "random seed", type=int)
    workers: int = setting(0, "data-loader worker processes", type=int)
    preview_every: int = setting(500, "steps between preview grids", type=int)
    checkpoint_every: int = setting(500, "steps between checkpoints", type=int)
    log_every: int = setting(10, "steps between logged losses", type=int)
    width: int | None = setting(None, "channels of the first conv; the others have 2× and 4× [32, or the --init "
                                "model's]: narrower runs faster, wider has more capacity; a wider run grows an "
                                "--init model", type=int)
    style_sizes: tuple[int, ...] | None = setting(
        None, "train each style at these style-image sizes (long side, px, comma-separated), one row each, named "
        "NAME@SIZE: 'fastst infer --stroke' moves between them (larger: bigger brush strokes)", type=_sizes)
    identity: bool = setting(False, "add an identity row, trained to reproduce the photo: the end of 'fastst infer "
                             "--strength' at 0 (with --init MODEL --only-norms: added to a trained model in minutes)",
                             action="store_true")
    strength_rows: tuple[float, ...] | None = setting(
        None, "with --init MODEL --only-norms, MODEL having an identity row: add a row per style at each of these "
        "strengths (comma-separated, in (0, 1)), named NAME~S, trained at a lower style weight; 'fastst infer "
        "--strength' then passes through them on its way from the photo to the style", type=_strengths)
    identity_weight: float = setting(1e5, "weight of the identity row's reconstruction term (mean squared error)",
                                     type=float)
    stability: float = setting(0.0, "weight of the stability term, for video without flicker: the output of a "
                               "slightly shifted, rotated, zoomed, noisier, brighter photo must equal the same "
                               "change of the photo's output (pixel MSE; 0: off)", type=float)
    distill: float = setting(0.0, "with --init: weight of keeping the init model's look, the pixel MSE between "
                             "the output and the init model's output for the same photo and style (0: off)",
                             type=float)
    only_norms: bool = setting(False, "with --init: train only the per-style norm scales and shifts (add a style "
                               "to a model without changing its others)", action="store_true")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (lists for tuples), as the model file stores them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def __post_init__(self) -> None:
        self.content_layers, self.style_layers = tuple(self.content_layers), tuple(self.style_layers)
        if self.style_sizes is not None:
            self.style_sizes = tuple(int(v) for v in self.style_sizes) or None
            sizes = self.style_sizes or ()
            if sizes and (min(sizes) < MIN_IMAGE_SIZE or max(sizes) > MAX_IMAGE_SIZE or len(set(sizes)) != len(sizes)):
                raise FaststError(f"'style_sizes' must be distinct sizes from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} px, "
                                  f"got {','.join(map(str, self.style_sizes))}")
        if self.strength_rows is not None:
            self.strength_rows = tuple(float(v) for v in self.strength_rows) or None
            values = self.strength_rows or ()
            if values and (not all(0 < v < 1 for v in values) or len(set(values)) != len(values)):
                raise FaststError(f"'strength_rows' must be distinct strengths between 0 and 1, "
                                  f"got {','.join(f'{v:g}' for v in values)}")
        self.crop_scale = tuple(float(a) for a in self.crop_scale)  # type: ignore[assignment]
        lo, hi = self.crop_scale if len(self.crop_scale) == 2 else (0.0, 0.0)
        if not 0 < lo <= hi <= 1:
            raise FaststError(f"crop scale must be MIN MAX with 0 < MIN ≤ MAX ≤ 1, got {' '.join(map(str, self.crop_scale))}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise FaststError(f"unknown learning-rate schedule '{self.lr_schedule}' ({', '.join(LR_SCHEDULES)})")
        if self.style_layer_weights is not None:
            self.style_layer_weights = tuple(float(w) for w in self.style_layer_weights)
            if len(self.style_layer_weights) != len(self.style_layers):
                raise FaststError(f"{len(self.style_layer_weights)} style layer weights for "
                                  f"{len(self.style_layers)} style layers")
        check_ranges(self)


def check_ranges(cfg: TrainConfig) -> None:
    """Every setting in its range, NaN and infinity nowhere: a bad value fails before any work, named
    as the setting ('lr'), never as a NaN model file or a failure after training steps ran."""
    def need(ok: bool, name: str, what: str) -> None:
        if not ok:
            raise FaststError(f"'{name}' must be {what}, got {getattr(cfg, name)!r}".replace("()", "none"))

    def finite(v: float, low: float = 0.0, strict: bool = False) -> bool:
        return math.isfinite(v) and (v > low if strict else v >= low)

    need(finite(cfg.lr, strict=True), "lr", "a positive number")
    for name in ("content_weight", "style_weight", "tv_weight", "identity_weight", "stability", "distill"):
        need(finite(getattr(cfg, name)), name, "a finite number ≥ 0")
    need(cfg.style_layer_weights is None or all(finite(w) for w in cfg.style_layer_weights), "style_layer_weights",
         "finite numbers ≥ 0")
    need(cfg.image_size >= MIN_IMAGE_SIZE, "image_size", f"≥ {MIN_IMAGE_SIZE} px")
    need(cfg.image_size <= MAX_IMAGE_SIZE, "image_size", f"at most {MAX_IMAGE_SIZE} px")
    need(cfg.style_size is None or cfg.style_size >= MIN_STYLE_SIZE, "style_size", f"≥ {MIN_STYLE_SIZE} px")
    need(cfg.style_size is None or cfg.style_size <= MAX_IMAGE_SIZE, "style_size", f"at most {MAX_IMAGE_SIZE} px")
    if cfg.style_size is None and not cfg.style_sizes and 2 * cfg.image_size > MAX_IMAGE_SIZE:
        raise FaststError(f"'style_size' must be given above an image size of {MAX_IMAGE_SIZE // 2} px: its default, "
                          f"2 × the image size, would be {2 * cfg.image_size} px (at most {MAX_IMAGE_SIZE})")
    for name, low in (("batch_size", 1), ("steps", 1), ("checkpoint_every", 1), ("log_every", 1),
                      ("preview_every", 0), ("workers", 0)):
        need(getattr(cfg, name) >= low, name, f"≥ {low}")
    need(cfg.workers <= MAX_WORKERS, "workers", f"at most {MAX_WORKERS} (each is a process)")
    most = max(1, MAX_BATCH_PIXELS // cfg.image_size ** 2)
    need(cfg.batch_size <= most, "batch_size", f"at most {most} at an image size of {cfg.image_size} px (batch size "
         f"× image size² at most {MAX_IMAGE_SIZE}² px)")
    need(cfg.width is None or cfg.width >= 1, "width", "≥ 1")
    if cfg.width is not None:
        from ..modelcheck import MAX_WIDTH  # torch: only where a width is given (training loads it anyway)

        need(cfg.width <= MAX_WIDTH, "width", f"at most {MAX_WIDTH}, the widest network a model file may hold")
    need(0 <= cfg.seed <= MAX_SEED, "seed", "from 0 to 2^32 - 1")
    need(bool(cfg.content_layers), "content_layers", "one or more layer names")
    need(bool(cfg.style_layers), "style_layers", "one or more layer names")


PRESETS: dict[str, dict[str, Any]] = {
    # A CPU user's first model: ~2 minutes on a 2-core CPU with hardware bf16, ~11 in fp32 without. A lower
    # style weight than the full recipe: in short runs a strong style term drowns the content.
    "quick": dict(image_size=128, style_size=256, batch_size=4, steps=200, style_weight=2.0,
                  preview_every=50, checkpoint_every=50),
    # The published recipe (Johnson et al., Turi Create): 256 px crops, batch 4, ~40k steps per style.
    "full": dict(image_size=256, batch_size=4, steps=40000, preview_every=1000, checkpoint_every=1000),
    # A trained model made stable for video (flicker) while keeping its look: only the stability and
    # distillation terms, no loss network, so a step is two passes of the transformer (see docs/video.md).
    "stable": dict(image_size=160, batch_size=4, steps=300, lr=2e-4, content_weight=0.0, style_weight=0.0,
                   tv_weight=0.0, stability=0.5, distill=1.0, preview_every=100, checkpoint_every=100),
}
# The model a preset starts from when no init model is given (as Turi Create starts from its own trained
# network): from the bundled one, 200 quick steps of a new style (mosaic) reached a held-out loss 28 %
# lower than from scratch, and its 50 steps beat scratch's 200 (see the training documentation).
PRESET_INIT: dict[str, str] = {"quick": "pretrained", "stable": "pretrained"}
# seconds per step at 160 px, batch 4, on a 2-core CPU: bf16 on AMX (Xeon; the EPYC with AVX512-BF16 measures
# about the same: 200 steps at 128 px in 105 s, quiet), fp32 on AVX2 (EPYC)
QUICK_SECONDS_PER_STEP = {"bf16": 0.85, "fp32": 5.0}
