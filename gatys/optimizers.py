"""The optimizers over an image's pixels, a registry whose budget is counted in loss evaluations, and
the loop that spends such a budget on one image."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm import tqdm

from fastst.errors import FaststError
from fastst.objectives.gatys import GatysObjective

from .defaults import LBFGS_HISTORY, NORMALIZED_LBFGS_LR, OPTIMIZER_LRS, SGD_AUTO_STEP


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


class BudgetSpent(Exception):
    """Raised inside a closure that would exceed the evaluation budget (L-BFGS line searches)."""


Row = dict[str, float]


class Descent:
    """Exactly `budget` loss evaluations of `objective` on `pixels` with the named optimizer, each logged
    as a row appended to `rows` (timed from `start`) and passed to `callback(row, image)`; `run` then
    leaves in `pixels` the evaluated image with the lowest loss (at a budget's end L-BFGS's line search
    may hold an older, worse point)."""

    def __init__(self, objective: GatysObjective, pixels: torch.Tensor, name: str, lr: float | None, budget: int,
                 rows: list[Row], start: float, bar: tqdm, callback: Callable[[Row, torch.Tensor], None],
                 lbfgs_history: int = LBFGS_HISTORY) -> None:
        self.objective, self.pixels, self.name, self.budget = objective, pixels, name, budget
        self.rows, self.start, self.bar, self.callback = rows, start, bar, callback
        self.opt = make_optimizer(name, [pixels], lr, objective.normalize_gradients, lbfgs_history)
        self.auto_lr = lr is None and OPTIMIZERS[name].lr is None
        # L-BFGS sees the loss times 1/mean|first gradient|: the minimiser is unchanged, but torch's
        # scale-dependent fallbacks (the first step, and a unit step along -g when no curvature pair is
        # accepted yet, which happens where the quartic style loss is concave) become steps of about one
        # pixel range instead of ~1e8, which overflowed to inf/NaN with Caffe-scale features.
        self.normalise = name == "lbfgs" and not objective.normalize_gradients
        # L-BFGS cannot clamp between steps, so it sees the image clamp(x) with the gradient passed straight
        # through: the logged loss is the output's, and at 256 px / 150 evaluations the saved image scored
        # 30% lower than optimising x unconstrained and clamping at the end (sigmoid(x) was within 2%, but
        # freezes saturated pixels). The first-order optimizers clamp x after every step instead.
        self.straight_through = name == "lbfgs"
        self.loss_scale = 1.0
        self.spent = 0
        self.best = pixels.detach().clone()
        self.best_total = math.inf
        self.best_row: Row = {}

    def closure(self) -> torch.Tensor:
        """One evaluation: loss and gradient of the current pixels, logged; the optimizer's closure."""
        if self.spent >= self.budget:
            raise BudgetSpent
        pixels = self.pixels
        self.opt.zero_grad(set_to_none=False)
        image = pixels + (pixels.clamp(0, 1) - pixels).detach() if self.straight_through else pixels
        terms = self.objective.terms(image)
        (terms["total"] * self.loss_scale).backward()
        if self.spent == 0:
            self._scale_from_first_gradient()
        self.spent += 1
        self._record(terms, image)
        return terms["total"].detach() * self.loss_scale

    def _scale_from_first_gradient(self) -> None:
        grad = self.pixels.grad
        if self.normalise:
            self.loss_scale = 1.0 / max(float(grad.abs().mean()), 1e-30)
            grad.mul_(self.loss_scale)
        if self.auto_lr:
            self.opt.param_groups[0]["lr"] = SGD_AUTO_STEP / max(float(grad.abs().mean()), 1e-30)

    def _record(self, terms: dict[str, torch.Tensor], image: torch.Tensor) -> None:
        row = {"iteration": len(self.rows) + 1, "seconds": time.perf_counter() - self.start,
               **{k: float(v.detach()) for k, v in terms.items()}}
        if not math.isfinite(row["total"]):
            raise FaststError(f"the loss became {row['total']} at evaluation {row['iteration']}; "
                              f"lower the learning rate ('lr') or the loss weights")
        self.rows.append(row)
        if row["total"] < self.best_total or self.objective.normalize_gradients:  # normalised: not descending
            self.best_total, self.best_row = row["total"], row
            self.best.copy_(image.detach())
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{row['total']:.4g}", refresh=False)
        self.callback(row, image)

    def run(self) -> tuple[float, Row]:
        """Spend the budget; returns the learning rate used and the log row of the image left in `pixels`."""
        if self.name == "lbfgs":
            while self.spent < self.budget:
                before, left = self.spent, self.budget - self.spent
                self.opt.param_groups[0]["max_iter"] = left
                self.opt.param_groups[0]["max_eval"] = left
                try:
                    self.opt.step(self.closure)
                except BudgetSpent:  # stopped inside a line search
                    break
                if self.spent == before:
                    break
        else:
            for _ in range(self.budget):
                self.opt.step(self.closure)
                with torch.no_grad():
                    self.pixels.clamp_(0, 1)
        if self.best_row:
            with torch.no_grad():
                self.pixels.copy_(self.best)
        return float(self.opt.param_groups[0]["lr"]), self.best_row
