"""Validation of model files, training checkpoints and imported state dicts before anything is built
from them: every type, every size against a sane bound, every tensor's shape against the one the
declared architecture has (computed on the meta device, which allocates nothing), every weight finite.
A file from the internet can then fail only with a FaststError naming the file and the problem, and a
few-KB file declaring a huge network is refused before a byte of it is allocated."""
from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from .controls import IDENTITY, KINDS, MAX_STRENGTH, STRENGTH, STYLE
from .errors import FaststError
from .transformer import DEFAULT_WIDTH, OUTPUTS, TransformerNet

ARCHITECTURE = "turi-transformer"
# Bounds far above any real model (the bundled one: width 32, 5 blocks, 4 styles) and far below what
# would exhaust memory: a width-1024, 64-block network already holds 10^10 weights.
MAX_WIDTH = 1024
MAX_BLOCKS = 64
MAX_STYLES = 4096
# Weights in all: the width and block bounds alone would allow 10^10 (40 GB in fp32). 2.5·10^8 is 1 GB, a
# network 150 times the bundled one's 1.7·10^6; a file cannot make fastst allocate more than that.
MAX_WEIGHTS = 250_000_000
MAX_THUMBNAIL_SIDE = 1024
FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def read_torch_file(path: str | os.PathLike, what: str = "model file", kind: str | None = None) -> Any:
    """torch.load(path, weights_only=True) on the CPU, as a FaststError naming the file when it cannot
    be read ("no such `what`", "not a `kind` (why)"; `kind` defaults to "readable `what`"): no code in
    the file runs, and torch's warnings and multi-line advice stay off the console."""
    kind = kind or f"readable {what}"
    import pickle
    import warnings

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FaststError(f"no such {what}", path)
    if os.path.isdir(path):
        raise FaststError(f"is a folder, expected a {what}", path)
    if os.path.getsize(path) == 0:
        raise FaststError(f"empty file (0 bytes), expected a {what}", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": a question for us, not the user
            return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise FaststError(f"cannot read the {what} (permission denied)", path) from None
    except pickle.UnpicklingError as e:
        text = str(e)
        if "Unsupported global" in text or "GLOBAL" in text:
            found = text.split("GLOBAL", 1)[-1].split()[0] if "GLOBAL" in text else "objects"
            raise FaststError(f"refused: the file holds Python objects ({found}), not just weights; loading them "
                              f"could run code", path) from None
        raise FaststError(f"not a {kind} (not a PyTorch weights file, or damaged)", path) from None
    except EOFError:
        raise FaststError(f"not a {kind} (the file ends too early: truncated?)", path) from None
    except Exception:  # noqa: BLE001 - whatever a damaged or foreign file makes torch's reader raise
        raise FaststError(f"not a {kind} (not a PyTorch weights file, or damaged or truncated)", path) from None


def _int(value: Any, what: str, low: int, high: int, path: str | os.PathLike | None) -> int:
    """`value` as an int in [low, high] (not a bool, not a float), else FaststError."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = repr(value) if isinstance(value, (int, float, str, bool, type(None))) else type(value).__name__
        raise FaststError(f"{what} must be an integer from {low} to {high}, got {shown[:40]}", path)
    return value


def _dict(value: Any, what: str, path: str | os.PathLike | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FaststError(f"{what} must be a table (dict), got {type(value).__name__}", path)
    return value


OPTIONAL_WEIGHTS = {"skip"}  # the input-skip gains, absent from files written before them (read as closed)


def _hash_tensor(h: Any, t: torch.Tensor) -> None:
    h.update(str(tuple(t.shape)).encode())
    h.update(t.detach().float().contiguous().numpy().tobytes())


def tensors_sha256(tensors: Iterable[torch.Tensor]) -> str:
    """sha256 over each tensor's shape and float32 values, in the order given: the same for a tensor
    stored in fp16 and for its float32 copy (the conversion is exact), so a file's weights can be
    checked after loading."""
    h = hashlib.sha256()
    for t in tensors:
        _hash_tensor(h, t)
    return h.hexdigest()


def weights_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """The checksum a model file stores of its weights: each name, shape and float32 values, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        _hash_tensor(h, state[name])
    return h.hexdigest()


def check_weights_sha256(blob: dict[str, Any], path: str | os.PathLike | None) -> None:
    """FaststError when the file stores a checksum of its weights that they no longer match (a bit flip
    or a damaged copy that still loads, values finite); files written without one pass."""
    stored = blob.get("weights_sha256")
    if stored is None:
        return
    if not isinstance(stored, str):
        raise FaststError(f"weights_sha256 must be text, got {type(stored).__name__}", path)
    if weights_sha256(blob["state_dict"]) != stored:
        raise FaststError("the weights do not match the file's checksum: the file is damaged (copy or download "
                          "it again)", path)


def expected_shapes(num_styles: int, residual_blocks: int, width: int, output: str) -> dict[str, torch.Size]:
    """{state-dict name: shape} of TransformerNet(num_styles, residual_blocks, width, output), built on the
    meta device: no memory is allocated whatever the sizes."""
    with torch.device("meta"):
        net = TransformerNet(num_styles=num_styles, residual_blocks=residual_blocks, width=width, output=output)
    return {k: v.shape for k, v in net.state_dict().items()}


def check_tensors(state: Any, expected: Mapping[str, torch.Size] | None, path: str | os.PathLike | None,
                  what: str = "weights") -> dict[str, torch.Tensor]:
    """A state dict whose values are finite floating-point tensors with exactly the `expected` names and
    shapes (any names and shapes when `expected` is None); FaststError otherwise."""
    state = _dict(state, what, path)
    total = 0
    for name, value in state.items():
        if not isinstance(name, str):
            raise FaststError(f"{what}: a name is a {type(name).__name__}, not text", path)
        if not isinstance(value, torch.Tensor):
            raise FaststError(f"{what}: '{name}' is a {type(value).__name__}, not a tensor", path)
        if value.dtype not in FLOAT_TYPES:
            raise FaststError(f"{what}: '{name}' holds {str(value.dtype).replace('torch.', '')} values, not floats", path)
        total += value.numel()  # a tensor stored once and expanded (stride 0) counts at its full size
    if total > MAX_WEIGHTS:
        raise FaststError(f"{what} hold {total:.3g} values, more than the {MAX_WEIGHTS:.3g} a model may have", path)
    if expected is not None:
        missing = [k for k in expected if k not in state and k not in OPTIONAL_WEIGHTS]
        extra = [k for k in state if k not in expected]
        if missing or extra:
            parts = ([f"{len(missing)} missing (first: {missing[0]})"] if missing else []) + \
                    ([f"{len(extra)} unexpected (first: {extra[0]})"] if extra else [])
            raise FaststError(f"{what} do not fit the architecture: {', '.join(parts)}", path)
        for name, shape in expected.items():
            if name in state and state[name].shape != shape:
                raise FaststError(f"{what}: '{name}' has shape {tuple(state[name].shape)}, the architecture needs "
                                  f"{tuple(shape)}", path)
    for name, value in state.items():
        if not bool(torch.isfinite(value).all()):
            raise FaststError(f"{what}: '{name}' holds non-finite values (NaN or infinity): a diverged training run, "
                              "or a damaged file?", path)
    return state


def check_styles(styles: Any, count: int | None, path: str | os.PathLike | None, what: str = "style table") -> list[dict]:
    """The style table: `count` entries (any number when None), each a dict with a unique non-empty text
    `name`, an optional text `sha256`, an optional uint8 (3, h, w) `thumbnail`, and the optional
    `kind` (style, identity or strength, at most one identity), `group` (text) and `style_size` (int)."""
    if not isinstance(styles, list):
        raise FaststError(f"{what} must be a list, got {type(styles).__name__}", path)
    if count is not None and len(styles) != count:
        raise FaststError(f"{what} has {len(styles)} entries but the network has {count} styles", path)
    if not styles:
        raise FaststError(f"{what} is empty", path)
    names: set[str] = set()
    identities = 0
    for i, s in enumerate(styles):
        s = _dict(s, f"{what} entry {i}", path)
        name = s.get("name")
        if not isinstance(name, str) or not name.strip():
            raise FaststError(f"{what} entry {i} has no name (text)", path)
        if name in names:
            raise FaststError(f"{what} names style '{name}' twice", path)
        names.add(name)
        for key in ("sha256", "group"):
            if s.get(key) is not None and not isinstance(s[key], str):
                raise FaststError(f"style '{name}': {key} must be text, got {type(s[key]).__name__}", path)
        thumb = s.get("thumbnail")
        if thumb is not None:
            if not isinstance(thumb, torch.Tensor) or thumb.dtype != torch.uint8 or thumb.dim() != 3 \
                    or thumb.shape[0] != 3 or not all(1 <= n <= MAX_THUMBNAIL_SIDE for n in thumb.shape[1:]):
                raise FaststError(f"style '{name}': the thumbnail must be a uint8 RGB image (3, h, w) up to "
                                  f"{MAX_THUMBNAIL_SIDE} px a side", path)
        kind = s.get("kind", STYLE)
        if kind not in KINDS:
            raise FaststError(f"style '{name}': unknown kind {str(kind)[:40]!r} (known: {', '.join(KINDS)})", path)
        identities += kind == IDENTITY
        strength = s.get("strength")
        if (kind == STRENGTH) != (strength is not None) or (strength is not None and not (
                isinstance(strength, (int, float)) and not isinstance(strength, bool) and 0 < strength < 1)):
            raise FaststError(f"style '{name}': a strength row needs a strength between 0 and 1, other rows none", path)
        if s.get("style_size") is not None:
            _int(s["style_size"], f"style '{name}': style_size", 1, 1 << 16, path)
    if identities > 1:
        raise FaststError(f"{what} has {identities} identity rows; a model has at most one", path)
    return styles


def validate_blob(blob: Any, path: str | os.PathLike | None, format_name: str = "fastst-model",
                  format_version: int = 1) -> None:
    """Check a loaded model-file dict in full (see the module docstring); FaststError on the first problem."""
    if not isinstance(blob, dict) or blob.get("format") != format_name:
        lightning = isinstance(blob, dict) and "pytorch-lightning_version" in blob
        raise FaststError("a Lightning checkpoint (convert it with `fastst convert`)" if lightning
                          else "not a fastst model file", path)
    version = blob.get("format_version", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version > format_version:
        raise FaststError(f"model format version {version} is newer than this fastst supports ({format_version}); "
                          "upgrade fastst", path)
    _int(version, "format_version", 0, format_version, path)
    arch = _dict(blob.get("architecture"), "architecture", path)
    if arch.get("name", ARCHITECTURE) != ARCHITECTURE:
        raise FaststError(f"unknown architecture {str(arch.get('name'))[:40]!r}; upgrade fastst", path)
    output = arch.get("output", "sigmoid")
    if output not in OUTPUTS:
        raise FaststError(f"unknown output head {str(output)[:40]!r}; upgrade fastst", path)
    num_styles = _int(arch.get("num_styles"), "architecture.num_styles", 1, MAX_STYLES, path)
    blocks = _int(arch.get("residual_blocks", 5), "architecture.residual_blocks", 0, MAX_BLOCKS, path)
    width = _int(arch.get("width", DEFAULT_WIDTH), "architecture.width", 1, MAX_WIDTH, path)
    check_styles(blob.get("styles"), num_styles, path)
    _dict(blob.get("config", {}), "config", path)
    strength = blob.get("default_strength", 1.0)
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= MAX_STRENGTH:
        raise FaststError(f"default_strength must be a number in [0, {MAX_STRENGTH:g}], got {str(strength)[:40]}",
                          path)
    check_tensors(blob.get("state_dict"), checked_shapes(num_styles, blocks, width, output, path), path)
    check_weights_sha256(blob, path)


def checked_shapes(num_styles: int, residual_blocks: int, width: int, output: str,
                   path: str | os.PathLike | None) -> dict[str, torch.Size]:
    """`expected_shapes`, or FaststError when that network would hold more than MAX_WEIGHTS weights:
    sizes within every single bound can still multiply into a network no machine holds."""
    shapes = expected_shapes(num_styles, residual_blocks, width, output)
    total = sum(math.prod(shape) for shape in shapes.values())
    if total > MAX_WEIGHTS:
        raise FaststError(f"the architecture declares a network of {total:.3g} weights (width {width}, "
                          f"{residual_blocks} residual blocks, {num_styles} styles), more than the {MAX_WEIGHTS:.3g} "
                          "a model may have", path)
    return shapes


def validate_checkpoint(blob: Any, path: str | os.PathLike | None) -> None:
    """Check a Lightning checkpoint written by `fastst train` in full: its style table, configuration,
    step count and the network weights under `net.` against the network they declare."""
    if not isinstance(blob, dict) or "fastst" not in blob or "state_dict" not in blob:
        raise FaststError("not a checkpoint written by fastst train", path)
    meta = _dict(blob["fastst"], "checkpoint metadata", path)
    config = _dict(meta.get("config"), "checkpoint configuration", path)
    styles = check_styles(meta.get("styles"), None, path)
    if len(styles) > MAX_STYLES:
        raise FaststError(f"style table has {len(styles)} entries, more than {MAX_STYLES}", path)
    width = config.get("width") or DEFAULT_WIDTH
    width = _int(width, "configuration width", 1, MAX_WIDTH, path)
    _int(blob.get("global_step", 0), "global_step", 0, 1 << 40, path)
    init = config.get("init")
    if init is not None:
        _int(_dict(init, "configuration init", path).get("steps_done", 0), "init steps_done", 0, 1 << 40, path)
    state = _dict(blob["state_dict"], "checkpoint weights", path)
    net = {k[4:]: v for k, v in state.items() if isinstance(k, str) and k.startswith("net.")}
    check_tensors(net, checked_shapes(len(styles), 5, width, "sigmoid", path), path)
