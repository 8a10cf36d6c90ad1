"""Which engine and precision run the network: the precision policy per device, and a registry of
external backends (models run outside PyTorch, such as ONNX Runtime) that layers above the core
plug in, so the core never imports them."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from ..errors import FaststError
from ..modelfile import StyleInfo, StyleModel
from .tiling import AUTO_TILE_PIXELS

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: An external backend is chosen automatically (see `choose_backend`) from this much input on a CPU:
#: ONNX Runtime's one-time export (~30 s, then cached) is repaid by its 1.5-1.7x speed-up after
#: ~25 megapixels.
AUTO_ONNX_PIXELS = 50_000_000


# ----------------------------------------------------------------------------------------- precision

def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """fp16 runs under autocast; fp32 and bf16 need none (bf16 runs a bf16 copy of the network)."""
    if precision != "fp16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16)


def network_dtype(precision: str) -> torch.dtype:
    """bf16 keeps fp32's range, so the whole network runs in it: no per-layer casts, and the
    norms and pads move half the bytes (a 512² frame 12 % faster than under autocast, measured).
    fp16 would overflow without autocast's fp32 islands."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


def channels_last_default(device: torch.device, precision: str) -> bool:
    """Whether the network runs channels-last (NHWC) by default. CPUs: yes, at every precision. oneDNN
    computes convolutions in NHWC or a blocked layout, so plain NCHW activations are reordered in and
    out of every conv (an extra copy per layer on AMX CPUs, hidden inside the conv on AVX-512 ones);
    channels-last end to end, with the norm and the (un)shuffles kept in that layout
    (`fastst.fastconv.channels_last_eager`), has none: 13-16 % less CPU time per image in
    bf16 and fp32 on an AVX512-BF16 CPU (docs/performance.md). CUDA: with half precision, where it
    feeds the tensor cores. Elsewhere (mps): no."""
    return device.type == "cpu" or (device.type == "cuda" and precision != "fp32")


# ------------------------------------------------------------------------------------ external models

@runtime_checkable
class ExternalModel(Protocol):
    """A model run by another engine: a StyleModel's style lookup, and one call (N,3,H,W) float in
    [0,1] with (N,S) weights -> (N,3,H,W) float32 CPU tensor. It runs whole images only (no tiling)
    in the precision it was built for."""

    backend: str  #: the engine's name, e.g. "onnx"
    path: Path
    styles: list[StyleInfo]

    @property
    def style_names(self) -> list[str]: ...

    def style_index(self, style: int | str) -> int: ...

    def style_weights(self, style: object = None, batch: int = 1) -> torch.Tensor: ...

    def __call__(self, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Backend:
    """An engine registered with `register_backend`: the model files it opens (`suffixes`, with
    `open(path, device)`), how it runs a .fst model (`convert(model, device)`, which may export and
    cache it), and whether its packages are installed (`available()`)."""

    name: str
    suffixes: tuple[str, ...]
    open: Callable[[str | os.PathLike, str], ExternalModel]
    convert: Callable[[StyleModel, str], ExternalModel]
    available: Callable[[], bool]


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> None:
    """Make an external engine known to `open_model`, `fastst.stylize` and the CLI (idempotent)."""
    _BACKENDS[backend.name] = backend


def get_backend(name: str) -> Backend:
    """The registered backend called `name`; FaststError if none is."""
    if name not in _BACKENDS:
        known = ", ".join(["torch", *_BACKENDS]) or "torch"
        raise FaststError(f"no backend '{name}' is registered (known: {known})")
    return _BACKENDS[name]


def backend_for_file(path: str | os.PathLike) -> Backend | None:
    """The registered backend that opens model files with this suffix, if any."""
    suffix = Path(path).suffix.lower()
    return next((b for b in _BACKENDS.values() if suffix in b.suffixes), None)


def choose_backend(pixels: Sequence[int], device_type: str, precision: str, tile: int | None) -> str:
    """'onnx' or 'torch' for a run over inputs of these pixel counts (one per network input): ONNX
    Runtime where it is faster and equal (fp32 on a CPU, enough work, no image that needs tiling).
    Whether it is installed is the caller's question (`Backend.available`)."""
    if device_type != "cpu" or precision != "fp32" or tile is not None or not pixels:
        return "torch"
    if max(pixels) > AUTO_TILE_PIXELS or sum(pixels) < AUTO_ONNX_PIXELS:
        return "torch"
    return "onnx"
