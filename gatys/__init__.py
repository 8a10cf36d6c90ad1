"""gatys: neural style transfer by per-image optimisation (Gatys et al.), on fastst's shared loss network.
The public API is imported lazily so the command line starts fast."""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {name: "gatys.optimize" for name in
            ("OPTIMIZERS", "Objective", "StylizeResult", "read_log", "score", "stylize", "write_log")}
_EXPORTS["run_sweep"] = "gatys.sweep"

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gatys' has no attribute {name!r}")
