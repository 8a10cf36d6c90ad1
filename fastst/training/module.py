"""The LightningModule: a TransformerNet, its training and validation steps against the perceptual
objective, and its optimizer. The frozen loss network is a submodule that Lightning moves with the rest
and that checkpoints leave out (it is rebuilt from its source)."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from ..controls import identity_index
from ..images import load_image
from ..lossnet import LossNetwork
from ..modelfile import StyleInfo, file_sha256
from ..objectives.perceptual import PerceptualObjective
from ..stability import distillation_loss, stability_term
from ..transformer import DEFAULT_WIDTH, TransformerNet
from .config import TrainConfig
from .rows import force_identity, identity_skip_mask, model_rows, plan_rows, reconstruction_loss, style_scales

LOSSNET = "lossnet."  # state-dict prefix of the frozen loss network


class StyleTransferModule(L.LightningModule):
    """TransformerNet trained against frozen-VGG perceptual losses, one Gram target set per style."""

    def __init__(self, style_paths: Sequence[str], style_names: Sequence[str], config: dict[str, Any],
                 kept_rows: Sequence[StyleInfo] | None = None) -> None:
        """`kept_rows`: instead of rows planned from style images, train the rows of an init model's
        table as they are (names, kinds, groups, sizes, hashes and thumbnails kept in the file written)."""
        super().__init__()
        self.save_hyperparameters(ignore=["kept_rows"])
        self.cfg = TrainConfig(**config)
        self.style_paths, self.style_names = list(style_paths), list(style_names)
        self.kept_rows = list(kept_rows) if kept_rows else None
        self.rows = (model_rows(self.kept_rows, dict(zip(self.style_names, self.style_paths))) if self.kept_rows
                     else plan_rows(self.style_paths, self.style_names, self.cfg))
        self.identity_row = identity_index(self.rows)
        self.net = TransformerNet(num_styles=len(self.rows), width=self.cfg.width or DEFAULT_WIDTH)
        # only the identity row opens the input skip; the style rows' gains stay zero (see TransformerNet)
        mask = identity_skip_mask(self.rows)
        self.net.skip.register_hook(lambda grad: grad * mask.to(grad))
        scales = style_scales(self.rows)  # strength rows' lower style weights
        self.register_buffer("row_style_scale", scales, persistent=False)
        cfg = self.cfg
        self.objective = PerceptualObjective(cfg.content_layers, cfg.style_layers, cfg.content_weight,
                                             cfg.style_weight, cfg.tv_weight, cfg.style_layer_weights)
        self.lossnet = LossNetwork(cfg.backbone, self.objective.layers)
        self.register_state_dict_post_hook(_drop_lossnet)
        self.register_load_state_dict_post_hook(_lossnet_not_missing)
        self._styles_info: list[StyleInfo] | None = None
        self.init_info: dict[str, Any] | None = None  # the model this run started from (train(init=...))
        self.default_strength: float | None = None  # the init model's, where its rows are kept
        if cfg.distill:  # the init model, frozen (filled by train(); in checkpoints, so a resumed run keeps it)
            self.teacher = TransformerNet(num_styles=len(self.rows), width=cfg.width or DEFAULT_WIDTH)
            self.teacher.requires_grad_(False).eval()

    # -- style targets ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Each row's Gram targets (its style image at its size; zeros for the identity row), as buffers
        that move with the module and stay out of checkpoints."""
        device = next(self.lossnet.parameters()).device
        size = self.cfg.style_size or 2 * self.cfg.image_size
        known = {i: self.objective.style_targets(self.lossnet, self.style_image(r.path, r.style_size or size).to(device))
                 for i, r in enumerate(self.rows) if r.path is not None}
        template = next(iter(known.values()), None)
        none = ({n: torch.zeros_like(g) for n, g in template.items()} if template is not None else
                {n: torch.zeros(1, 1, device=device) for n in self.cfg.style_layers})
        targets = [known.get(i, none) for i in range(len(self.rows))]  # zeros: rows without an image
        for name in self.cfg.style_layers:
            self.register_buffer(f"gram_{name}", torch.stack([t[name] for t in targets]), persistent=False)

    def style_image(self, path: str, size: int) -> torch.Tensor:
        """A style image at a long side of `size` px, refused in one line if a side is then too small for
        the loss network's style layers (a 9000x60 px panorama is 128x1 px at 128)."""
        image = load_image(path, size=size)
        self.lossnet.check_size(image, path, f"style image resized to a long side of {size} px",
                                self.objective.style_layers)
        return image

    def style_infos(self) -> list[StyleInfo]:
        """Names, image hashes, 64-px thumbnails, kinds, groups and style sizes of the rows."""
        if self._styles_info is None:
            infos = []
            for i, r in enumerate(self.rows):
                if self.kept_rows and r.path is None:  # a kept row without a new image: as the model had it
                    infos.append(self.kept_rows[i])
                    continue
                thumb = None if r.path is None else (load_image(r.path, size=64) * 255).round().to(torch.uint8)
                infos.append(StyleInfo(name=r.name, sha256=file_sha256(r.path) if r.path else "", thumbnail=thumb,
                                       kind=r.kind, group=None if r.group == r.name else r.group,
                                       style_size=r.style_size, strength=r.strength))
            self._styles_info = infos
        return self._styles_info

    # -- training -----------------------------------------------------------------------------------
    def losses(self, images: torch.Tensor, styles: torch.Tensor) -> dict[str, torch.Tensor]:
        """Content, style, TV, the stability and distillation terms where weighted, and the weighted
        total for a batch of photos with their row indices; an identity row's samples (the first of
        every batch) are scored by their reconstruction instead of the painting terms."""
        styles = force_identity(styles, self.identity_row)
        weights = torch.nn.functional.one_hot(styles, self.net.num_styles).to(images.dtype)
        out = self.net(images, weights)
        if self.identity_row is None:
            parts = self.loss_terms(out, images, styles, skip_zero=True)
        else:
            parts = self._identity_losses(out, images, styles)
        cfg = self.cfg
        if cfg.stability:  # seeded by step (and rank), so a resumed run draws what an unbroken one would
            seed = (cfg.seed * 1_000_003 + int(self.global_step)) * 64 + int(self.global_rank)
            parts["stability"] = stability_term(self.net, images, weights, out,
                                                generator=torch.Generator().manual_seed(seed))
            parts["loss"] = parts["loss"] + cfg.stability * parts["stability"]
        if cfg.distill:
            with torch.no_grad():
                self.teacher.eval()
                taught = self.teacher(images, weights)
            parts["distill"] = distillation_loss(out, taught)
            parts["loss"] = parts["loss"] + cfg.distill * parts["distill"]
        return parts

    def _identity_losses(self, out: torch.Tensor, images: torch.Tensor, styles: torch.Tensor) -> dict[str, torch.Tensor]:
        """The painting terms of the style rows' samples plus the identity row's reconstruction term."""
        same = styles == self.identity_row
        if bool(same.all()):
            parts = {"loss": out.new_zeros((), dtype=torch.float32)}  # an identity row alone: no painting terms
        else:
            parts = self.loss_terms(out[~same], images[~same], styles[~same], skip_zero=True)
        parts["identity"] = reconstruction_loss(out[same], images[same])
        parts["loss"] = parts["loss"] + self.cfg.identity_weight * parts["identity"]
        return parts

    def loss_terms(self, out: torch.Tensor, images: torch.Tensor, styles: torch.Tensor,
                   skip_zero: bool = False) -> dict[str, torch.Tensor]:
        """The weighted loss of given outputs `out` for the photos `images` in the styles `styles`
        (`skip_zero`: no loss network where content and style weigh 0, as `PerceptualObjective.terms`)."""
        grams = {n: getattr(self, f"gram_{n}")[styles] for n in self.cfg.style_layers}
        scale = None if self.row_style_scale is None else self.row_style_scale[styles]
        return self.objective.terms(self.lossnet, out, images, grams, skip_zero, style_scale=scale)

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
        styles = torch.tensor([i for i in range(n) if i != self.identity_row], device=photo.device, dtype=torch.long)
        if not len(styles):  # an identity row alone: nothing painted to score
            return
        out = self.net(photo.expand(len(styles), -1, -1, -1), torch.nn.functional.one_hot(styles, n).to(photo.dtype))
        # every term is a mean over the batch, so the mean of the per-style terms is the whole batch's
        per_style = [self.loss_terms(out[s:s + 1], photo, styles[s:s + 1]) for s in range(len(styles))]
        parts = {k: torch.stack([p[k].float() for p in per_style]).mean() for k in per_style[0]}
        self.log_dict({f"val/{k}": v for k, v in parts.items()}, batch_size=1, sync_dist=True)
        self.log("val_loss", parts["loss"], batch_size=1, prog_bar=True, logger=False, sync_dist=True)
        if len(styles) > 1:
            names = [self.rows[int(s)].name for s in styles]
            self.log_dict({f"val/loss_{name}": p["loss"] for name, p in zip(names, per_style)},
                          batch_size=1, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        if self.cfg.only_norms:  # Dumoulin et al.: a new style is learnt by its norm parameters alone
            self.net.requires_grad_(False)
            params = [p for n in self.net.norms() for p in (n.scale, n.shift)] + [self.net.skip]
            for q in params:
                q.requires_grad_(True)
        else:
            params = list(self.net.parameters())
        optimizer = torch.optim.Adam(params, lr=self.cfg.lr)
        if self.cfg.lr_schedule == "constant":
            return optimizer
        # cosine: the rate falls from lr to 0 at the last step. The Trainer steps it and checkpoints its step;
        # the factor reads cfg.steps when called, so a run resumed with more steps stretches the decay.
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_start(self) -> None:
        # A resumed run restores the optimizer's last rate, which the old step count set: re-aim it at this run's decay
        if self.cfg.lr_schedule != "constant":
            schedule = self.lr_schedulers()
            for group, base in zip(self.optimizers().param_groups, schedule.base_lrs):
                group["lr"] = base * self.lr_factor(self.global_step)

    def lr_factor(self, step: int) -> float:
        """The cosine schedule's multiple of the learning rate at optimizer step `step`: 1 at the start, 0 at cfg.steps."""
        return 0.5 * (1 + math.cos(math.pi * min(step, self.cfg.steps) / self.cfg.steps))

    # -- checkpoints and the model file -------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["fastst"] = {"styles": [s.to_dict() for s in self.style_infos()], "config": self.model_config()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        config = checkpoint.get("fastst", {}).get("config", {})
        self.init_info = config.get("init") or self.init_info
        self.default_strength = config.get("kept_default_strength", self.default_strength)
        if self._trainer is not None:  # not when loaded outside a run (load_from_checkpoint)
            _rekey_checkpoint_callback(checkpoint, self._trainer.checkpoint_callback)

    def model_config(self) -> dict[str, Any]:
        """What goes into the model file's config: training settings and the loss network."""
        return {**self.cfg.to_dict(), "styles": [r.name for r in self.rows],
                "style_images": [os.path.basename(p) for p in self.style_paths],
                "steps_done": int(self.global_step) + int((self.init_info or {}).get("steps_done", 0)),
                **({"init": self.init_info} if self.init_info else {}),
                **({"rows_of_init": True} if self.kept_rows else {}),
                **({"kept_default_strength": self.default_strength} if self.default_strength is not None else {})}


def _rekey_checkpoint_callback(checkpoint: dict[str, Any], callback: Any) -> None:
    """Lightning keys ModelCheckpoint's saved state by its settings: resumed with another
    --checkpoint-every, the run would warn, forget the checkpoints it wrote and start a last-v1.ckpt
    beside a last.ckpt left behind. Give the run's one ModelCheckpoint state to the new callback.
    (Called from on_load_checkpoint, which Lightning runs before it restores the callbacks.)"""
    states = checkpoint.get("callbacks") or {}
    if callback is None or callback.state_key in states:
        return
    old = [k for k in states if isinstance(k, str) and k.startswith(type(callback).__name__ + "{")]
    if len(old) == 1:
        states[callback.state_key] = states.pop(old[0])


def _drop_lossnet(module: torch.nn.Module, state: dict[str, Any], prefix: str, metadata: Any) -> None:
    """State-dict hook: the frozen loss network's weights stay out of state dicts and checkpoints."""
    for key in [k for k in state if k.startswith(prefix + LOSSNET)]:
        del state[key]


def _lossnet_not_missing(module: torch.nn.Module, incompatible: Any) -> None:
    """Load hook: a state dict without the loss network (every checkpoint) loads strictly."""
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys
                                    if not (k.startswith(LOSSNET) or f".{LOSSNET}" in k)]
