"""Training the fast stylizer: a LightningModule holding the losses and a train() that builds the
Trainer (devices, precision, strategy, checkpoints, logs, progress bar are the Trainer's)."""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf
from lightning.pytorch.loggers import CSVLogger

from .data import DEFAULT_CROP_SCALE, StyleDataModule, readable_images
from .errors import FaststError
from .hardware import cpu_has_fast_bf16
from .images import atomic_path, find_images, load_image, pil_to_tensor, resize_short_side, save_image, uniform_border
from .lossnet import LossNetwork
from .losses import content_loss, gram_matrix, style_loss, total_variation
from .modelcheck import read_torch_file, validate_checkpoint
from .modelfile import StyleInfo, StyleModel, file_sha256, load_model, save_model
from .transformer import DEFAULT_WIDTH, TransformerNet

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved into the model file."""

    image_size: int = 256
    style_size: int | None = None  # long side of the style images; None: 2 × image_size
    crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE  # area fraction of the photo each random crop covers
    batch_size: int = 4
    steps: int = 40000
    lr: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": decay to zero over `steps` (a fine-tuning run's last gains)
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 1e4
    content_layers: tuple[str, ...] = ("relu2_2",)
    style_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    style_layer_weights: tuple[float, ...] | None = None  # one per style layer; None: all 1
    backbone: str = "vgg16-caffe"
    seed: int = 0
    workers: int = 0
    preview_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 10
    width: int | None = None  # channels of the first conv, 2× and 4× in the next (None: an --init model's, else 32)
    only_norms: bool = False  # train only the per-style norm scale and shift; convs stay as initialised

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["content_layers"], d["style_layers"] = list(self.content_layers), list(self.style_layers)
        d["crop_scale"] = list(self.crop_scale)
        if self.style_layer_weights is not None:
            d["style_layer_weights"] = list(self.style_layer_weights)
        return d

    def __post_init__(self) -> None:
        self.content_layers, self.style_layers = tuple(self.content_layers), tuple(self.style_layers)
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


LR_SCHEDULES = ("constant", "cosine")
VGG_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}  # channels of every VGG layer in block N


def _vgg_block(layer: str) -> int:
    m = re.fullmatch(r"(?:relu|conv)([1-5])_\d", layer)
    if not m:
        raise FaststError(f"the gatys objective needs VGG layer names (reluN_M), not '{layer}'")
    return int(m.group(1))


def gatys_objective(size: int, content_weight: float | None = None, style_weight: float | None = None,
                    tv_weight: float | None = None) -> dict[str, Any]:
    """TrainConfig settings whose loss is Gatys' objective (gatys' default layers and α, β, TV weights)
    on a size×size output, divided by the content layer's element count: training on it makes a model
    that minimises what `gatys stylize` and benchmarks/quality.py's scorer measure at that size.

    Gatys sums squared content differences and weights layer l's Gram term by β·C_l²/(4·|L|) in the
    fastst Gram normalisation; the trainer averages both, so each style layer gets β·C_l²/(4·|L|·C·h·w)
    with C·h·w the content layer's element count, and TV (summed over 3·size² pixels) γ·3·size²/(C·h·w).
    """
    from gatys.defaults import DEFAULT_CONTENT_WEIGHT, DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT

    from .lossnet import GATYS_LAYERS

    content_layers, style_layers = GATYS_LAYERS["vgg"]
    alpha = DEFAULT_CONTENT_WEIGHT if content_weight is None else content_weight
    beta = DEFAULT_STYLE_WEIGHT if style_weight is None else style_weight
    gamma = DEFAULT_TV_WEIGHT if tv_weight is None else tv_weight
    block = _vgg_block(content_layers[0])
    elements = VGG_CHANNELS[block] * (size / 2 ** (block - 1)) ** 2
    return dict(content_layers=tuple(content_layers), style_layers=tuple(style_layers),
                content_weight=float(alpha), style_weight=1.0,
                style_layer_weights=tuple(beta * VGG_CHANNELS[_vgg_block(n)] ** 2 / (4 * len(style_layers) * elements)
                                          for n in style_layers),
                tv_weight=gamma * 3 * size ** 2 / elements)


PRESETS: dict[str, dict[str, Any]] = {
    # A CPU user's first model: ~10 minutes on a 2-core CPU (bf16 where the CPU has it). A lower
    # style weight than the full recipe: in short runs a strong style term drowns the content.
    "quick": dict(image_size=128, style_size=256, batch_size=4, steps=200, style_weight=2.0,
                  preview_every=50, checkpoint_every=50),
    # The published recipe (Johnson et al., Turi Create): 256 px crops, batch 4, ~40k steps per style.
    "full": dict(image_size=256, batch_size=4, steps=40000, preview_every=1000, checkpoint_every=1000),
}
# The model a preset starts from when no --init is given (as Turi Create starts from its own trained
# network): from the bundled one, 200 quick steps of a new style (mosaic) reached a held-out loss 28 %
# lower than from scratch, and its 50 steps beat scratch's 200 (see the README).
PRESET_INIT: dict[str, str] = {"quick": "pretrained"}
# seconds per step at 160 px, batch 4, on a 2-core CPU: bf16 on AMX (Xeon), fp32 on AVX2 (EPYC)
QUICK_SECONDS_PER_STEP = {"bf16": 0.85, "fp32": 5.0}


class StyleTransferModule(L.LightningModule):
    """TransformerNet trained against frozen-VGG perceptual losses, one Gram target set per style."""

    def __init__(self, style_paths: Sequence[str], style_names: Sequence[str], config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = TrainConfig(**config)
        self.style_paths, self.style_names = list(style_paths), list(style_names)
        self.net = TransformerNet(num_styles=len(self.style_paths), width=self.cfg.width or DEFAULT_WIDTH)
        # The loss network is frozen and rebuilt from its source: kept out of state_dict and checkpoints.
        object.__setattr__(self, "lossnet", LossNetwork(self.cfg.backbone,
                                                        list(self.cfg.content_layers) + list(self.cfg.style_layers)))
        self._styles_info: list[StyleInfo] | None = None
        self.init_info: dict[str, Any] | None = None  # set by train(init=...): the model this run started from

    # -- style targets ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        self.lossnet.to(self.device)
        grams: dict[str, list[torch.Tensor]] = {name: [] for name in self.cfg.style_layers}
        size = self.cfg.style_size or 2 * self.cfg.image_size
        with torch.no_grad():
            for path in self.style_paths:
                image = load_image(path, size=size).unsqueeze(0).to(self.device)
                feats = self.lossnet(image, self.cfg.style_layers)
                for name in self.cfg.style_layers:
                    grams[name].append(gram_matrix(feats[name])[0])
        for name, g in grams.items():
            self.register_buffer(f"gram_{name}", torch.stack(g), persistent=False)

    def style_infos(self) -> list[StyleInfo]:
        """Names, image hashes and 64-px thumbnails of the styles."""
        if self._styles_info is None:
            infos = []
            for name, path in zip(self.style_names, self.style_paths):
                thumb = (load_image(path, size=64) * 255).round().to(torch.uint8)
                infos.append(StyleInfo(name=name, sha256=file_sha256(path), thumbnail=thumb))
            self._styles_info = infos
        return self._styles_info

    def on_fit_start(self) -> None:
        self.lossnet.to(self.device)

    # -- training -----------------------------------------------------------------------------------
    def losses(self, images: torch.Tensor, styles: torch.Tensor) -> dict[str, torch.Tensor]:
        """Content, style, TV and weighted total for a batch of photos with their style indices."""
        weights = torch.nn.functional.one_hot(styles, self.net.num_styles).to(images.dtype)
        return self.loss_terms(self.net(images, weights), images, styles)

    def loss_terms(self, out: torch.Tensor, images: torch.Tensor, styles: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted loss of given outputs `out` for the photos `images` in the styles `styles`."""
        cfg = self.cfg
        with torch.no_grad():
            target = self.lossnet(images, cfg.content_layers)
        feats = self.lossnet(out)
        content = sum(content_loss(feats[n], target[n]) for n in cfg.content_layers)
        layer_weights = dict(zip(cfg.style_layers, cfg.style_layer_weights)) if cfg.style_layer_weights else None
        # Gram matrices in the autocast dtype: 3x faster than fp32 and rounding well below SGD's noise
        style = style_loss(feats, {n: getattr(self, f"gram_{n}")[styles] for n in cfg.style_layers}, layer_weights,
                           gram_fp32=False)
        tv = total_variation(out.float())
        total = cfg.content_weight * content + cfg.style_weight * style + cfg.tv_weight * tv
        return {"loss": total, "content": content, "style": style, "tv": tv}

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, styles = batch
        parts = self.losses(images, styles)
        self.log_dict({f"train/{k}": v.detach() for k, v in parts.items()}, prog_bar=False, on_step=True)
        self.log("loss", parts["loss"].detach(), prog_bar=True, on_step=True, logger=False)
        if self.cfg.lr_schedule != "constant":
            self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True)
        return parts["loss"]

    def validation_step(self, photo: torch.Tensor, batch_idx: int) -> None:
        """One held-out photo in every style: the run's loss on pictures it never trains on, overall
        (val/loss, val/content, val/style, val/tv) and per style (val/loss_<style>); means over the photos."""
        n = self.net.num_styles
        styles = torch.arange(n, device=photo.device)
        out = self.net(photo.expand(n, -1, -1, -1), torch.nn.functional.one_hot(styles, n).to(photo.dtype))
        # every term is a mean over the batch, so the mean of the per-style terms is the whole batch's
        per_style = [self.loss_terms(out[s:s + 1], photo, styles[s:s + 1]) for s in range(n)]
        parts = {k: torch.stack([p[k].float() for p in per_style]).mean() for k in per_style[0]}
        self.log_dict({f"val/{k}": v for k, v in parts.items()}, batch_size=1, sync_dist=True)
        self.log("val_loss", parts["loss"], batch_size=1, prog_bar=True, logger=False, sync_dist=True)
        if n > 1:
            self.log_dict({f"val/loss_{name}": p["loss"] for name, p in zip(self.style_names, per_style)},
                          batch_size=1, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        if self.cfg.only_norms:  # Dumoulin et al.: a new style is learnt by its norm parameters alone
            self.net.requires_grad_(False)
            params = [p for n in self.net.norms() for p in (n.scale, n.shift)]
            for q in params:
                q.requires_grad_(True)
        else:
            params = list(self.net.parameters())
        optimizer = torch.optim.Adam(params, lr=self.cfg.lr)
        if self.cfg.lr_schedule == "constant":
            return optimizer
        # cosine: the rate falls from lr to 0 at the last step. The Trainer steps it and checkpoints its step;
        # the factor reads cfg.steps when called, so a run resumed with more --steps stretches the decay.
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_start(self) -> None:
        # A resumed run restores the optimizer's last rate, which the old step count set: re-aim it at this run's decay
        if self.cfg.lr_schedule != "constant":
            schedule = self.lr_schedulers()
            for group, base in zip(self.optimizers().param_groups, schedule.base_lrs):
                group["lr"] = base * self.lr_factor(self.global_step)

    def lr_factor(self, step: int) -> float:
        """The cosine schedule's multiple of --lr at optimizer step `step`: 1 at the start, 0 at cfg.steps."""
        return 0.5 * (1 + math.cos(math.pi * min(step, self.cfg.steps) / self.cfg.steps))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["fastst"] = {"styles": [s.to_dict() for s in self.style_infos()], "config": self.model_config()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.init_info = checkpoint.get("fastst", {}).get("config", {}).get("init") or self.init_info

    def model_config(self) -> dict[str, Any]:
        """What goes into the model file's config: training settings and the loss network."""
        return {**self.cfg.to_dict(), "styles": list(self.style_names),
                "style_images": [os.path.basename(p) for p in self.style_paths],
                "steps_done": int(self.global_step) + int((self.init_info or {}).get("steps_done", 0)),
                **({"init": self.init_info} if self.init_info else {})}


class ProgressBar(TQDMProgressBar):
    """Lightning's bar, which also gets its total on a resumed run: Lightning skips on_train_epoch_start,
    where the bar learns it, when it restarts in the middle of an epoch (a fastst run is one epoch)."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        super().on_train_start(trainer, module)
        if trainer.global_step:
            self.train_progress_bar.total = convert_inf(self.total_train_batches)
            self.train_progress_bar.set_description(f"resumed at step {trainer.global_step}")


class ValidateLastStep(Callback):
    """Validation also after the last step when it is no checkpoint: Lightning validates a stopping
    run's last batch, so the final model's score is logged in the same loop and at the same kind of
    step as the others."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True


class PreviewGrid(Callback):
    """Every `every` steps, a PNG grid of fixed photos (rows) × styles (columns) in the log folder;
    at the end, a loss plot from the CSV log."""

    def __init__(self, photos: list[Path], every: int, size: int = 192) -> None:
        self.every = every
        self.photos = [resize_short_side(load_image(p), size)[..., :size, :size] for p in photos]

    def write(self, trainer: L.Trainer, module: StyleTransferModule) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask, before rank 0 alone writes
        if not trainer.is_global_zero or not self.photos:
            return
        net = module.net
        was_training = net.training
        net.eval()
        rows = []
        with torch.no_grad():
            for photo in self.photos:
                x = photo.unsqueeze(0).to(module.device)
                cells = [x]
                for s in range(net.num_styles):
                    w = torch.nn.functional.one_hot(torch.tensor([s], device=module.device), net.num_styles).float()
                    cells.append(net(x, w).float())
                rows.append(torch.cat(cells, dim=3))
        net.train(was_training)
        grid = torch.cat(rows, dim=2)[0].cpu()
        folder = Path(log_dir or ".") / "previews"
        folder.mkdir(parents=True, exist_ok=True)
        save_image(grid, folder / f"step{trainer.global_step:06d}.png")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if self.every and trainer.global_step % self.every == 0:
            self.write(trainer, module)

    def on_train_end(self, trainer, module) -> None:  # noqa: ANN001
        self.write(trainer, module)
        log_dir = trainer.log_dir
        if trainer.is_global_zero and log_dir:
            plot_losses(Path(log_dir) / "metrics.csv", Path(log_dir) / "losses.png")


def keep_metrics_history(log_dir: Path, resuming: bool) -> None:
    """Lightning's CSV logger deletes metrics.csv from a log folder it finds in use. When resuming,
    keep it as metrics.partN.csv so that the loss history and plot span the whole run; a fresh run
    in the folder drops earlier parts as Lightning drops metrics.csv."""
    parts = metrics_parts(log_dir)
    current = log_dir / "metrics.csv"
    if not resuming:
        for part in parts:
            part.unlink()
    elif current.is_file():
        current.rename(log_dir / f"metrics.part{len(parts)}.csv")


def metrics_parts(log_dir: Path) -> list[Path]:
    """The kept metrics of earlier legs of a resumed run, oldest first."""
    found = [(f, f.name[len("metrics.part"):-len(".csv")]) for f in Path(log_dir).glob("metrics.part*.csv")]
    return [f for f, n in sorted(found, key=lambda fn: int(fn[1]) if fn[1].isdigit() else -1) if n.isdigit()]


def read_metrics(metrics_csv: Path) -> list[dict[str, str]]:
    """The rows of metrics.csv preceded by those of the kept earlier parts; where a run was resumed
    from an older checkpoint, the earlier part's rows from that step on are superseded and dropped."""
    import csv

    legs = []
    for path in metrics_parts(metrics_csv.parent) + [metrics_csv]:
        if path.is_file():
            with open(path, newline="") as f:
                legs.append([row for row in csv.DictReader(f) if row.get("step")])
    rows: list[dict[str, str]] = []
    cutoff = math.inf
    for leg in reversed(legs):
        rows[:0] = [row for row in leg if int(row["step"]) < cutoff]
        if leg:
            cutoff = min(cutoff, min(int(row["step"]) for row in leg))
    return rows


def plot_losses(metrics_csv: Path, out_png: Path) -> Path | None:
    """Plot the logged losses (log scale) against the step, earlier legs of a resumed run included;
    returns the PNG path, or None without data."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float]]] = {}
    val: dict[str, list[tuple[int, float]]] = {}  # --val-data: drawn over the training curve of the same name
    for row in read_metrics(metrics_csv):
        for key, value in row.items():
            if value and key.startswith(("train/", "val/")):
                kind, _, name = key.partition("/")
                (series if kind == "train" else val).setdefault(name, []).append((int(row["step"]), float(value)))
    if not series:
        return None
    per_style = {name[5:]: points for name, points in val.items() if name.startswith("loss_")}
    panels = sorted(series.items()) + ([("validation loss per style", [])] if per_style else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8))
    for ax, (name, points) in zip(axes if len(panels) > 1 else [axes], panels):
        if name == "validation loss per style":
            lines = [(label, pts, "o") for label, pts in per_style.items()]
        else:
            lines = [("train", points, None)] + ([("validation", val[name], "o")] if name in val else [])
        for label, pts, marker in lines:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1, label=label, marker=marker, ms=3)
        if len(lines) > 1:
            ax.legend(fontsize=6)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_yscale("log")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out_png


def quiet_lightning() -> None:
    """Keep Lightning's info chatter (tips, 'GPU available: False') and deprecation noise off the console."""
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


def default_precision(accelerator: str) -> str:
    """bf16-mixed on CUDA and on CPUs that compute bf16 in hardware; fp32 elsewhere (emulated bf16 is slower)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_fast_bf16() else "32-true"


def style_name(path: str | os.PathLike) -> str:
    return Path(path).stem


def warm_start(net: TransformerNet, style_names: Sequence[str], model: StyleModel) -> list[str]:
    """Start `net` from a trained model: all conv weights, and each style's norm scale and shift where
    the model has a style of that name; other styles start from the mean of the model's styles (a
    neutral point between them). A wider `net` grows the model without changing what it computes:
    the extra channels' outgoing weights start at zero, so training adds them to a working model.
    Returns the names that were new to the model."""
    source = model.net
    if source.output != net.output:
        raise FaststError(f"has a {source.output} output head (an imported model), which fastst training does not "
                          f"use: it cannot be trained further", model.path)
    if len(source.residual) != len(net.residual):
        raise FaststError(f"has {len(source.residual)} residual blocks, this run {len(net.residual)}", model.path)
    if source.width > net.width:
        raise FaststError(f"has width {source.width}, wider than this run's {net.width}: a model cannot be narrowed",
                          model.path)
    index = {s.name: i for i, s in enumerate(model.styles)}
    new = [name for name in style_names if name not in index]
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith((".scale", ".shift")):
                continue
            src = source.get_parameter(name)
            param[tuple(slice(0, n) for n in src.shape)] = src
            if param.dim() == 4:  # the old outputs ignore the new input channels
                param[: src.shape[0], src.shape[1]:] = 0
        for mine, theirs in zip(net.norms(), source.norms()):
            channels = theirs.scale.shape[1]
            for table, src in ((mine.scale, theirs.scale), (mine.shift, theirs.shift)):
                for row, name in enumerate(style_names):
                    table[row, :channels] = src[index[name]] if name in index else src.mean(0)
    return new


def warn_if_framed(path: str | os.PathLike, image: torch.Tensor) -> bool:
    """Warn (and return True) when a style image has a flat border on two or more sides, 3 px or
    wider: a scan's frame or a letterbox, which the model would learn to draw along every output's edges."""
    border = uniform_border(image)
    if sum(b >= 3 for b in border) < 2:
        return False
    log.warning("%s: flat border of %d, %d, %d, %d px (top, bottom, left, right); the model will learn to draw "
                "it along its outputs' edges: trim it from the style image", path, *border)
    return True


def train(styles: Sequence[str | os.PathLike], data: str | os.PathLike, out: str | os.PathLike,
          config: TrainConfig | None = None, log_dir: str | os.PathLike | None = None,
          resume: str | os.PathLike | None = None, accelerator: str = "auto", devices: int | str = "auto",
          precision: str | None = None, strategy: str = "auto", style_names: Sequence[str] | None = None,
          num_nodes: int = 1, tensorboard: bool = False, progress: bool = True, half: bool = False,
          init: str | os.PathLike | None = None, val_data: str | os.PathLike | None = None) -> Path:
    """Train a TransformerNet on the photos in `data` for the given style images; write the model
    file `out` atomically and return its path. Checkpoints, previews and logs go to `log_dir`.
    `init` starts from a trained .fst model ("pretrained": the bundled one), see `warm_start`.
    `val_data`: a folder of held-out photos, scored whole in every style at every checkpoint
    (`StyleTransferModule.validation_step`); their final loss goes into the model file."""
    cfg = config or TrainConfig()
    out = Path(out)
    style_paths = [str(Path(s)) for s in styles]
    if not style_paths:
        raise FaststError("at least one --style image is needed")
    for s in style_paths:
        warn_if_framed(s, load_image(s))  # loading fails early, naming a missing or corrupt style image
    names = list(style_names) if style_names else [style_name(s) for s in style_paths]
    if len(set(names)) != len(names):
        raise FaststError(f"style names must be unique: {', '.join(names)}")
    if out.suffix != ".fst":
        raise FaststError("the model file should end in .fst", out)
    if not out.parent.exists():
        raise FaststError("output folder does not exist", out.parent)
    if resume is not None and not Path(resume).is_file():
        raise FaststError("no such checkpoint", resume)
    if resume is not None and init is not None:
        raise FaststError("give --resume (a checkpoint of this run) or --init (a model to start from), not both")
    start = load_model(None if str(init) == "pretrained" else init) if init is not None else None
    if cfg.only_norms and start is None and resume is None:
        raise FaststError("--only-norms trains the norm parameters of a trained network: give --init MODEL")
    resumed_width = checkpoint_width(read_checkpoint(resume)) if resume is not None else None
    if cfg.width is None:  # as wide as the model or checkpoint this run continues
        cfg = dataclasses.replace(cfg, width=start.net.width if start is not None else resumed_width or DEFAULT_WIDTH)
    if resumed_width is not None and cfg.width != resumed_width:
        raise FaststError(f"the checkpoint's network has width {resumed_width}, not {cfg.width}", resume)
    if cfg.only_norms and start is not None and cfg.width != start.net.width:
        raise FaststError(f"--only-norms keeps the init model's convs: its width is {start.net.width}, not {cfg.width}")
    files, _ = readable_images(data)
    val_files = readable_images(val_data, "--val-data")[0] if val_data is not None else []
    if val_files and {f.resolve() for f in val_files} <= {f.resolve() for f in files}:
        log.warning("%s: every validation photo is also a training photo: val/loss will not show how the model "
                    "does on photos it has not seen", val_data)
    if cfg.image_size < 32 or cfg.batch_size < 1 or cfg.steps < 1 or cfg.width < 1:
        raise FaststError("need --image-size ≥ 32, --batch-size ≥ 1, --steps ≥ 1 and --width ≥ 1")

    quiet_lightning()
    if resume is not None:  # a resumed run reuses its folders on purpose, and keeps its loss history
        import warnings

        warnings.filterwarnings("ignore", message=r".*(Experiment logs|Checkpoint) directory .* exists and is not empty")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    log_dir = Path(log_dir) if log_dir else out.with_suffix("").parent / (out.stem + "_logs")
    precision = precision or default_precision(accelerator)
    module = StyleTransferModule(style_paths, names, cfg.to_dict())
    if start is not None:
        new = warm_start(module.net, names, start)
        module.init_info = {"model": start.path.name, "steps_done": int(start.config.get("steps_done", 0)),
                            "new_styles": new}
    datamodule = StyleDataModule(data, cfg.image_size, cfg.batch_size, len(style_paths), cfg.steps, cfg.seed, cfg.workers,
                                 cfg.crop_scale)
    datamodule.files, datamodule.val_files = files, val_files
    keep_metrics_history(log_dir, resuming=resume is not None)
    loggers: list = [CSVLogger(str(log_dir), name="", version="")]
    if tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger
        loggers.append(TensorBoardLogger(str(log_dir), name="tensorboard", version=""))
    callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=str(log_dir / "checkpoints"), every_n_train_steps=cfg.checkpoint_every,
                        save_last=True, save_top_k=1, monitor=None),
        PreviewGrid(files[: min(3, len(files))], cfg.preview_every),
    ]
    if progress:
        callbacks.append(ProgressBar(refresh_rate=1))
    if val_files:
        callbacks.append(ValidateLastStep())
    # validation at every checkpoint, counted in global steps (so a resumed run keeps the schedule)
    validation: dict[str, Any] = dict(limit_val_batches=0)
    if val_files:
        validation = dict(check_val_every_n_epoch=None, val_check_interval=min(cfg.checkpoint_every, cfg.steps))
    trainer = L.Trainer(
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, precision=precision,
        max_steps=cfg.steps, max_epochs=-1, logger=loggers, callbacks=callbacks, log_every_n_steps=min(cfg.log_every, cfg.steps),
        enable_progress_bar=progress, enable_model_summary=False, use_distributed_sampler=False,
        default_root_dir=str(log_dir), deterministic=False, num_sanity_val_steps=0, **validation,
    )
    started = time.time()
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
    if trainer.is_global_zero:
        config_out = module.model_config()
        config_out.update(precision=str(precision), seconds=round(time.time() - started, 1),
                          devices=int(trainer.world_size), accelerator=type(trainer.accelerator).__name__)
        if val_files and "val/loss" in trainer.callback_metrics:
            config_out["validation"] = {"photos": len(val_files), "step": int(trainer.global_step),
                                        **{k[4:]: round(float(v), 6) for k, v in trainer.callback_metrics.items()
                                           if k.startswith("val/")}}
        net, infos = module.net.float().cpu(), module.style_infos()
        if cfg.only_norms and start is not None:  # the convs are the init model's: its other styles still hold
            net, infos = keep_other_styles(start, net, infos)
            config_out["styles"] = [s.name for s in infos]
        save_model(out, net, infos, config_out, half=half)
    return out


def keep_other_styles(start: StyleModel, net: TransformerNet, infos: list[StyleInfo]) -> tuple[TransformerNet, list[StyleInfo]]:
    """After an --only-norms run: the init model's styles (each replaced by this run's if it retrained one
    of that name) followed by this run's new styles, in one network with the shared convs."""
    trained = {s.name for s in infos}
    order = [s.name for s in start.styles] + [s.name for s in infos if s.name not in {t.name for t in start.styles}]
    merged = TransformerNet(num_styles=len(order), residual_blocks=len(net.residual), width=net.width)
    warm_start(merged, order, StyleModel(net, infos))  # the convs and this run's rows
    kept = {s.name: i for i, s in enumerate(start.styles) if s.name not in trained}
    with torch.no_grad():  # the init model's untouched rows
        for mine, theirs in zip(merged.norms(), start.net.norms()):
            for row, name in enumerate(order):
                if name in kept:
                    mine.scale[row], mine.shift[row] = theirs.scale[kept[name]], theirs.shift[kept[name]]
    by_name = {s.name: s for s in start.styles} | {s.name: s for s in infos}
    return merged, [by_name[name] for name in order]


def read_checkpoint(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """A Lightning checkpoint written by `fastst train`, loaded on the CPU; bad files raise FaststError."""
    blob = read_torch_file(checkpoint, "checkpoint")
    validate_checkpoint(blob, checkpoint)
    return blob


def checkpoint_width(blob: dict[str, Any]) -> int:
    """The network width of a checkpoint read by `read_checkpoint` (checkpoints from before `--width`: 32)."""
    return int(blob["fastst"]["config"].get("width") or DEFAULT_WIDTH)


def checkpoint_to_model(checkpoint: str | os.PathLike, out: str | os.PathLike, half: bool = False) -> Path:
    """Convert a Lightning checkpoint written by `fastst train` into a .fst model file."""
    blob = read_checkpoint(checkpoint)
    meta = blob["fastst"]
    styles = [StyleInfo(s["name"], s.get("sha256", ""), s.get("thumbnail")) for s in meta["styles"]]
    net = TransformerNet(num_styles=len(styles), width=checkpoint_width(blob))
    net.load_state_dict({k[4:]: v for k, v in blob["state_dict"].items() if k.startswith("net.")})
    earlier = int((meta["config"].get("init") or {}).get("steps_done", 0))  # steps of an --init model
    config = dict(meta["config"], steps_done=int(blob.get("global_step", 0)) + earlier)
    return save_model(out, net, styles, config, half=half)
