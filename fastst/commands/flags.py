"""Flag value types for argparse, and the library's errors (which quote settings by name: 'width',
'val_data') with flags named instead."""
from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping

from ..errors import FaststError


def with_flag_names(error: FaststError, flags: Mapping[str, str]) -> FaststError:
    """The library's error with each quoted setting that `flags` knows ('width', 'val_data') named by
    its flag instead (--width, --val-data)."""
    message = str(error)[len(error.path) + 2:] if error.path else str(error)
    flagged = re.sub(r"'([a-z_]+)'", lambda m: flags.get(m.group(1), m.group(0)), message)
    return FaststError(flagged, error.path)


def number_in(low: float, high: float) -> Callable[[str], float]:
    """A number in [low, high] (NaN never is)."""
    def parse(text: str) -> float:
        v = number(text)
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}], got {v:g}")
        return v
    return parse


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    return number_in(0.0, 1.0)(text)


def number(text: str) -> float:
    """Any number."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An integer of at least `minimum` and, where given, at most `maximum`."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if maximum is not None and not minimum <= v <= maximum:
            raise argparse.ArgumentTypeError(f"must be from {minimum} to {maximum}, got {v}")
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {v}")
        return v
    return parse


def tile_size(text: str) -> int:
    """--tile: 0 (never tile) or a tile side of at least 16 px (smaller tiles are all context, no picture)."""
    v = positive(0)(text)
    if 0 < v < 16:
        raise argparse.ArgumentTypeError(f"must be 0 (never tile) or at least 16 px, got {v}")
    return v
