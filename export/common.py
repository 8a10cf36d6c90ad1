"""What an exported model says about itself (style names, versions, training summary) and the
checks every export shares: output paths and the verification inputs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from fastst.errors import FaststError
from fastst.modelfile import FORMAT_VERSION, StyleModel
from fastst.paths import check_writable_folder, inside, same_file
from fastst.version import fastst_version

#: Version of the exported interface (input/output names, layout, value ranges). Bump on change.
INTERFACE_VERSION = 1


def training_summary(model: StyleModel) -> str:
    """model.config as compact, sorted JSON (anything not JSON-native written as a string)."""
    return json.dumps(model.config, sort_keys=True, default=str, separators=(",", ":"))


def metadata(model: StyleModel) -> dict[str, str]:
    """The string key/value metadata both exporters attach to the model."""
    meta = {
        "styles": json.dumps(model.style_names),
        "fastst_version": fastst_version(),
        "format_version": str(FORMAT_VERSION),
        "interface_version": str(INTERFACE_VERSION),
        "training": training_summary(model),
    }
    # the style table for apps that compose strength and stroke themselves (fastst.controls): a group's
    # weight is split between its sizes, then each row's weight moves from the identity row (s = 0) to
    # the row (s = 1) through its strength rows (kind "strength", same group and size, at "strength")
    meta["rows"] = json.dumps([{"name": s.name, "kind": s.kind, "group": s.group or s.name, "style_size": s.style_size}
                               | ({"strength": s.strength} if s.strength is not None else {}) for s in model.styles])
    meta["default_strength"] = json.dumps(model.default_strength)
    hashes = [s.sha256 for s in model.styles]
    if any(hashes):
        meta["style_sha256"] = json.dumps(hashes)
    return meta


def check_output_path(path: str | os.PathLike, model: StyleModel, kind: str) -> Path:
    """Refuse, before any slow work, an output whose folder is missing or unwritable, or that is the input
    model (through symlinks and hard links) or a folder holding it."""
    path = Path(path)
    check_writable_folder(path.parent)
    if path.is_dir() and kind == "ONNX":
        raise FaststError("is a folder; give a file name for the ONNX export", path)
    if model.path is not None and path.exists():
        if same_file(path, model.path):
            raise FaststError("output would overwrite the input model", path)
        if inside(model.path, path):
            raise FaststError(f"output would replace a folder holding the input model ({model.path})", path)
    return path


def check_apart(outputs: list[str | os.PathLike | None]) -> None:
    """Refuse outputs of one export run that are one path or lie one inside another (an ONNX file in
    the --web folder, say): the later export would replace or be refused by the earlier one's files."""
    given = [Path(p) for p in outputs if p is not None]
    for i, a in enumerate(given):
        for b in given[i + 1:]:
            if inside(a, b) or inside(b, a):
                raise FaststError(f"is also another output of this export ({b})", a)


def verification_batch(num_styles: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of two deterministic images with two style vectors: style 0 alone, and a blend of all."""
    g = torch.Generator().manual_seed(seed + 1000 * height + width)
    image = torch.rand(2, 3, height, width, generator=g)
    one_hot = torch.zeros(num_styles)
    one_hot[0] = 1.0
    blend = torch.arange(num_styles, 0, -1, dtype=torch.float32)
    blend = blend / blend.sum()
    return image, torch.stack([one_hot, blend])


def nbytes(path: str | os.PathLike) -> int:
    """Size of a file, or of every file under a directory (an .mlpackage)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def human_size(n: int) -> str:
    """Bytes as a short human string (MB with one decimal)."""
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"
