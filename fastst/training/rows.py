"""The style-table rows a run trains: each style image at each style-image size (the rows `fastst infer
--stroke` moves between), and optionally an identity row (the end of `--strength` that reproduces the
photo), or rows on the way between the two (`strength_rows`). A style-size row of style NAME is named
NAME@SIZE and belongs to group NAME; a strength row at S is named NAME~S (NAME@SIZE~S)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..controls import IDENTITY, STRENGTH, group_of, groups
from ..errors import FaststError
from .config import TrainConfig, strength_row_style_scale


@dataclass(frozen=True)
class RowPlan:
    """One row: its name, style image (None for the identity row), group and style-image size; a
    strength row's place between the identity row and its style."""

    name: str
    path: str | None
    group: str
    style_size: int | None
    kind: str = "style"
    strength: float | None = None


def plan_rows(style_paths: Sequence[str], style_names: Sequence[str], cfg: TrainConfig) -> list[RowPlan]:
    """Rows in table order: every style at every size of `style_sizes` (one size, `style_size`, when
    none are given: the row then keeps the style's own name), then the identity row if asked for."""
    sizes = cfg.style_sizes or (cfg.style_size or 2 * cfg.image_size,)
    rows = [RowPlan(f"{name}@{size}" if cfg.style_sizes else name, path, name, size)
            for path, name in zip(style_paths, style_names) for size in sizes]
    if cfg.strength_rows:  # the rows between the identity row and each style row, instead of the rows
        rows = [RowPlan(f"{r.name}~{s:g}", r.path, r.group, r.style_size, kind=STRENGTH, strength=s)
                for r in rows for s in cfg.strength_rows]
    if cfg.identity:
        if IDENTITY in style_names:
            raise FaststError(f"'{IDENTITY}' names the identity row: give the style another name")
        rows.append(RowPlan(IDENTITY, None, IDENTITY, None, kind=IDENTITY))
    if not rows:
        raise FaststError("at least one style image is needed (or 'identity')")
    return rows


def model_rows(styles: Sequence[Any], images: Mapping[str, str] | None = None) -> list[RowPlan]:
    """The rows of a trained model's table (its StyleInfos), in its order: what a run trains that
    fine-tunes every row of an init model in place. `images` maps a group (a style's name) to its style
    image, which each row of the group then uses at its own style size; other rows have none."""
    images = images or {}
    names = list(groups(styles))
    unknown = sorted(set(images) - set(names))
    if unknown:
        raise FaststError(f"the model has no style {', '.join(unknown)} (its styles are {', '.join(names)})")
    return [RowPlan(s.name, images.get(group_of(s)) if s.kind != IDENTITY else None, group_of(s), s.style_size,
                    kind=s.kind, strength=getattr(s, "strength", None)) for s in styles]


def force_identity(styles: torch.Tensor, identity: int | None) -> torch.Tensor:
    """Row indices of a batch with its first sample turned into an identity sample: every batch of an
    identity run trains that row (its norms are shared by no other row, so it must be seen often)."""
    if identity is None or styles.numel() == 0:
        return styles
    styles = styles.clone()
    styles[0] = identity
    return styles


def reconstruction_loss(out: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """The identity row's term: mean squared difference to the photo itself (the content the network
    should give back unchanged)."""
    return F.mse_loss(out.float(), images.float())


def identity_skip_mask(rows: Sequence[RowPlan]) -> torch.Tensor:
    """(rows, 1): 1 for the identity row and strength rows, whose input skip trains; style rows keep
    theirs closed."""
    return torch.tensor([[1.0 if r.kind in (IDENTITY, STRENGTH) else 0.0] for r in rows])


def style_scales(rows: Sequence[RowPlan]) -> torch.Tensor | None:
    """(rows,): each row's style weight as a fraction of the run's (strength rows train at a lower
    one, `strength_row_style_scale`); None where every row has the full weight."""
    if not any(r.kind == STRENGTH for r in rows):
        return None
    return torch.tensor([strength_row_style_scale(r.strength) if r.kind == STRENGTH and r.strength is not None
                         else 1.0 for r in rows])
