"""Callbacks of a training run: the progress bar, preview grids and loss plot, validation after the
last step, and the model file written at the end (so that any Trainer fitting the module writes one)."""
from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf

from ..errors import FaststError
from ..images import load_image, resize_short_side, save_image
from ..modelfile import StyleModel, save_model
from .metrics import plot_losses
from .module import StyleTransferModule
from .surgery import keep_other_styles

log = logging.getLogger(__name__)


class ProgressBar(TQDMProgressBar):
    """Lightning's bar, which also gets its total on a resumed run: Lightning skips on_train_epoch_start,
    where the bar learns it, when it restarts in the middle of an epoch (a fastst run is one epoch).
    A resumed run's bar counts the whole run's steps from the step it resumed at."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        super().on_train_start(trainer, module)
        if trainer.global_step:
            bar = self.train_progress_bar
            bar.reset(total=convert_inf(trainer.num_training_batches))
            bar.n = bar.initial = trainer.global_step  # the rate counts this leg's steps
            bar.set_description(f"resumed at step {trainer.global_step}")


class ValidateLastStep(Callback):
    """Validation also after the last step when it is no checkpoint: Lightning validates a stopping
    run's last batch, so the final model's score is logged in the same loop and at the same kind of
    step as the others."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True


class PreviewGrid(Callback):
    """Every `every` steps, a PNG grid of the first `count` training photos (rows) × styles (columns)
    in the log folder; at the end, a loss plot from the CSV log."""

    def __init__(self, every: int, count: int = 3, size: int = 192) -> None:
        self.every, self.count, self.size = every, count, size
        self.photos: list[torch.Tensor] = []

    def setup(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        files = getattr(trainer.datamodule, "files", None) or []
        self.photos, skipped = [], []
        for path in files:  # the first `count` usable photos: headers that parse may still hide bad pixels
            if len(self.photos) == self.count:
                break
            try:
                self.photos.append(resize_short_side(load_image(path), self.size)[..., :self.size, :self.size])
            except FaststError as e:
                skipped.append(str(e))
        if skipped:
            log.warning("preview grid: skipped %d unusable photo(s) (%s)", len(skipped), skipped[0])

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


class WriteModelFile(Callback):
    """At the end of fitting, the trained network as a .fst model file (atomically, by rank 0), with the
    run's settings, timing and, where validated, the last validation figures. `base`: the model an
    only-norms run started from, whose other styles the file keeps (see `keep_other_styles`)."""

    def __init__(self, out: str | Path, half: bool = False, base: StyleModel | None = None) -> None:
        self.out, self.half, self.base = Path(out), half, base
        self.started = time.time()

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.started = time.time()

    def on_fit_end(self, trainer: L.Trainer, module: StyleTransferModule) -> None:
        if not trainer.is_global_zero:
            return
        config = module.model_config()
        config.update(precision=str(trainer.precision), seconds=round(time.time() - self.started, 1),
                      devices=int(trainer.world_size), accelerator=type(trainer.accelerator).__name__)
        validation = self.validation(trainer)
        if validation:
            config["validation"] = validation
        net, infos = copy.deepcopy(module.net).float().cpu(), module.style_infos()
        if module.cfg.only_norms and self.base is not None:  # the convs are the base model's: its other styles hold
            net, infos = keep_other_styles(self.base, net, infos)
            config["styles"] = [s.name for s in infos]
        save_model(self.out, net, infos, config, half=self.half, default_strength=module.default_strength)

    @staticmethod
    def validation(trainer: L.Trainer) -> dict[str, Any]:
        """The last validation's figures (val/loss …), its photo count and step; empty without validation."""
        metrics = trainer.callback_metrics
        if "val/loss" not in metrics or trainer.datamodule is None:
            return {}
        photos = len(getattr(trainer.datamodule, "val_files", []))
        return {"photos": photos, "step": int(trainer.global_step),
                **{k[4:]: round(float(v), 6) for k, v in metrics.items() if k.startswith("val/")}}
