"""Training the fast stylizer, one job per module:

* `config`: TrainConfig (the run's settings, the source of `fastst train`'s flags) and the presets;
* `module`: the LightningModule (steps, losses, optimizer);
* `callbacks`: progress bar, preview grids, validation after the last step, the model file at the end;
* `metrics`: the CSV loss history across resumed legs, and its plot;
* `surgery`: starting from a trained model, and merging an only-norms run back into it;
* `checkpoints`: reading Lightning checkpoints and converting them into model files;
* `rows`: the style-table rows a run trains (styles at each style size, identity, strength rows);
* `guards`: settings checked before work, the stop on a non-finite loss, Ctrl-C at a step boundary;
* `fit`: `train()`, which builds the Trainer and fits.

The data live in `fastst.data`, the objectives in `fastst.objectives`. Names are imported lazily so
that `config` (torch-free) loads without Lightning."""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    **{name: "fastst.training.config" for name in
       ("TrainConfig", "PRESETS", "PRESET_INIT", "QUICK_SECONDS_PER_STEP", "LR_SCHEDULES")},
    "StyleTransferModule": "fastst.training.module",
    **{name: "fastst.training.callbacks" for name in
       ("ProgressBar", "PreviewGrid", "ValidateLastStep", "WriteModelFile")},
    **{name: "fastst.training.metrics" for name in
       ("keep_metrics_history", "metrics_parts", "read_metrics", "plot_losses")},
    **{name: "fastst.training.surgery" for name in ("warm_start", "keep_other_styles")},
    **{name: "fastst.training.checkpoints" for name in ("read_checkpoint", "checkpoint_width", "checkpoint_to_model")},
    **{name: "fastst.training.fit" for name in
       ("train", "trainer_precision", "quiet_lightning", "style_name", "warn_if_framed")},
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fastst.training' has no attribute {name!r}")
