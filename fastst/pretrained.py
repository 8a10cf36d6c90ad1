"""The pretrained multi-style model shipped inside the package (used when no model is given)."""
from __future__ import annotations

from pathlib import Path

from .errors import FaststError

PRETRAINED_FILE = Path(__file__).parent / "pretrained" / "fastst-4styles.fst"


def pretrained_path() -> Path:
    """Path of the bundled pretrained model file."""
    if not PRETRAINED_FILE.is_file():
        raise FaststError("the bundled pretrained model is missing from this installation; pass a model file", PRETRAINED_FILE)
    return PRETRAINED_FILE
