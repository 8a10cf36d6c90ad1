"""gatys: neural style transfer by per-image optimisation (Gatys et al.), on fastst's shared loss network."""
from .optimize import OPTIMIZERS, Objective, StylizeResult, read_log, score, stylize, write_log
from .sweep import run_sweep

__all__ = ["OPTIMIZERS", "Objective", "StylizeResult", "read_log", "run_sweep", "score", "stylize", "write_log"]
