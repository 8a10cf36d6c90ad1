"""fastst: real-time neural style transfer. The public API, imported lazily so the CLI starts fast."""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FaststError": "fastst.errors",
    "LossNetwork": "fastst.lossnet",
    "TransformerNet": "fastst.transformer",
    "style_vector": "fastst.transformer",
    "StyleModel": "fastst.modelfile",
    "load_model": "fastst.modelfile",
    "save_model": "fastst.modelfile",
    "load_image": "fastst.images",
    "save_image": "fastst.images",
    "gram_matrix": "fastst.losses",
    "preserve_colors": "fastst.colors",
    "stylize": "fastst.inference.stylizer",
    "Stylizer": "fastst.inference.stylizer",
    "train": "fastst.training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fastst' has no attribute {name!r}")
