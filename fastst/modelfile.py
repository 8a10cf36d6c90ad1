"""The .fst model file: weights, style names (with image hashes and thumbnails) and the training
configuration in one dict, saved with torch.save and read with weights_only=True so that a model
file from the internet cannot run code."""
from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import FaststError
from .images import atomic_path
from .transformer import DEFAULT_WIDTH, OUTPUTS, TransformerNet, style_vector

FORMAT = "fastst-model"
FORMAT_VERSION = 1


@dataclass
class StyleInfo:
    """One style a model holds: its name, the sha256 of the style image, a small RGB thumbnail."""

    name: str
    sha256: str = ""
    thumbnail: torch.Tensor | None = None  # uint8 (3, h, w)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "thumbnail": self.thumbnail}


@dataclass
class StyleModel:
    """A loaded model: the network plus what it was trained on."""

    net: TransformerNet
    styles: list[StyleInfo]
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def style_names(self) -> list[str]:
        return [s.name for s in self.styles]

    def style_weights(self, style: int | str | dict[str, float] | list[float] | None = None,
                      batch: int = 1) -> torch.Tensor:
        """Style weights for a style given by index, name, {name: weight} blend or weight list."""
        n = len(self.styles)
        if isinstance(style, str):
            style = self.style_index(style)
        elif isinstance(style, dict):
            weights = [0.0] * n
            for name, w in style.items():
                weights[self.style_index(name)] += float(w)
            style = weights
        try:
            return style_vector(n, style, batch)
        except ValueError as e:
            raise FaststError(f"{e}; styles are: {', '.join(self.style_names)}", self.path) from None

    def style_index(self, name: str | int) -> int:
        """Index of a style by name or index (given as int or digit string)."""
        names = self.style_names
        if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
            i = int(name)
            if 0 <= i < len(names):
                return i
        elif name in names:
            return names.index(name)
        raise FaststError(f"unknown style '{name}'; styles are: {', '.join(names)}", self.path)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(path: str | os.PathLike, net: TransformerNet, styles: list[StyleInfo],
               config: dict[str, Any] | None = None, half: bool = False) -> Path:
    """Write a model file atomically; `half` stores weights as fp16 (half the size, same results to ~1e-3)."""
    if len(styles) != net.num_styles:
        raise ValueError("one StyleInfo per style is needed")
    state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().clone()
             for k, v in net.state_dict().items()}
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": {"name": "turi-transformer", "num_styles": net.num_styles,
                         "residual_blocks": len(net.residual), "width": net.width, "output": net.output},
        "state_dict": state,
        "styles": [s.to_dict() for s in styles],
        "config": dict(config or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return path


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> StyleModel:
    """Load a model file (default: the pretrained model shipped with fastst) in eval mode."""
    if path is None:
        from .pretrained import pretrained_path
        path = pretrained_path()
    path = Path(path)
    if not path.exists():
        raise FaststError("no such model file", path)
    if path.is_dir():
        raise FaststError("is a directory, expected a .fst model file", path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as e:
        raise FaststError(f"not a fastst model file ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})", path) from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        kind = "a Lightning checkpoint (convert it with `fastst convert`)" if isinstance(blob, dict) and "pytorch-lightning_version" in blob else "not a fastst model file"
        raise FaststError(kind, path)
    if blob.get("format_version", 0) > FORMAT_VERSION:
        raise FaststError(f"model format version {blob['format_version']} is newer than this fastst supports ({FORMAT_VERSION}); upgrade fastst", path)
    arch = blob["architecture"]
    if arch.get("output", "sigmoid") not in OUTPUTS:
        raise FaststError(f"unknown output head '{arch['output']}'; upgrade fastst", path)
    net = TransformerNet(num_styles=int(arch["num_styles"]), residual_blocks=int(arch.get("residual_blocks", 5)),
                         width=int(arch.get("width", DEFAULT_WIDTH)), output=str(arch.get("output", "sigmoid")))
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    except RuntimeError as e:
        raise FaststError(f"model weights do not fit the architecture ({str(e).splitlines()[0]})", path) from None
    styles = [StyleInfo(name=s["name"], sha256=s.get("sha256", ""), thumbnail=s.get("thumbnail")) for s in blob["styles"]]
    net.eval().requires_grad_(False).to(device)
    return StyleModel(net=net, styles=styles, config=blob.get("config", {}), path=path)
