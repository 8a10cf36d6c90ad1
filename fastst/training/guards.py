"""What keeps a training run from failing late or silently: the Trainer's settings checked before any
work, a stop with a clear error when the loss stops being finite (before the step that would spread
NaN into the weights, so no checkpoint and no model file holds it), and a clean stop on Ctrl-C at a
step boundary with a checkpoint to resume from (Lightning turns Ctrl-C into a silent exit 1)."""
from __future__ import annotations

import math
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ..errors import FaststError, Interrupted, first_line


class NonFiniteLoss(FaststError):
    """The training loss became NaN or infinite; nothing of that step was applied or saved."""


def make_trainer(**settings: Any) -> L.Trainer:
    """L.Trainer(**settings), its refusals (accelerator, devices, strategy, precision, num_nodes) as one
    FaststError naming the setting, before anything is read or written."""
    accelerator = str(settings.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise FaststError(f"'accelerator' {accelerator}: no CUDA GPU is available here; use cpu or auto")
    try:
        return L.Trainer(**settings)
    except Exception as e:  # noqa: BLE001 - Lightning raises ValueError, TypeError or MisconfigurationException
        shown = ", ".join(f"'{k}' {settings[k]}" for k in ("accelerator", "devices", "strategy", "precision",
                                                           "num_nodes") if k in settings)
        raise FaststError(f"the trainer refuses {shown}: {first_line(e, 200).replace('`', '')}") from None


class StopOnNonFiniteLoss(Callback):
    """Raise NonFiniteLoss before the backward pass of a step whose loss is NaN or infinite: no gradient
    is taken, the optimizer does not step, and the checkpoint callback never sees the step."""

    def on_before_backward(self, trainer: L.Trainer, module: L.LightningModule, loss: torch.Tensor) -> None:
        value = float(loss.detach().float())
        if not math.isfinite(value):
            raise NonFiniteLoss(f"the loss became {value} at step {trainer.global_step + 1}: training stopped and no "
                                "model was written; lower 'lr' or the loss weights")


class StopOnInterrupt(Callback):
    """The first Ctrl-C (SIGINT) asks the run to stop at the end of the current step: a checkpoint of
    that step is written to `checkpoint` and Interrupted is raised before the next step (the run resumes
    from it exactly; a Ctrl-C during the last step lets the run finish). A second Ctrl-C interrupts at
    once. Only in the main thread of the main process."""

    def __init__(self, checkpoint: str | Path) -> None:
        self.checkpoint = Path(checkpoint)
        self.requested = self.saved = False
        self.previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:  # noqa: ARG002 - a signal handler's signature
        self.requested = True
        signal.signal(signal.SIGINT, self.previous)  # a second Ctrl-C: interrupt now

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)

    def _restore(self) -> None:
        if self.previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.requested and not self.saved:  # where ModelCheckpoint saves: the same resumable state
            self._restore()
            trainer.save_checkpoint(self.checkpoint)
            self.saved = True

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        # stop here, not at the end of the last step: by now Lightning has handed that step's losses to the loggers
        if self.saved:
            for logger in trainer.loggers:
                logger.save()
            raise Interrupted(f"interrupted after step {trainer.global_step}; the run resumes from {self.checkpoint}",
                              checkpoint=self.checkpoint)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self._restore()
