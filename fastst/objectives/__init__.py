"""The objectives fastst optimises: Johnson et al.'s perceptual loss (the fast trainer's), Gatys et al.'s
(per-image optimisation's and the fixed scorer's), their default layers and weights, and the conversion
of Gatys' objective into the trainer's settings. Imported lazily: `settings` needs no torch."""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PerceptualObjective": "fastst.objectives.perceptual",
    "GatysObjective": "fastst.objectives.gatys",
    "NormalizedGradient": "fastst.objectives.gatys",
    **{name: "fastst.objectives.settings" for name in (
        "GATYS_LAYERS", "default_layers", "default_weights", "gatys_objective",
        "DEFAULT_CONTENT_WEIGHT", "DEFAULT_STYLE_WEIGHT", "DEFAULT_TV_WEIGHT")},
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fastst.objectives' has no attribute {name!r}")
