"""The .fst model file: weights, style names (with image hashes and thumbnails) and the training
configuration in one dict, saved with torch.save and read with weights_only=True so that a model
file from the internet cannot run code."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .atomic import save_torch
from .errors import FaststError
from .modelcheck import read_torch_file, validate_blob, weights_sha256
from .transformer import DEFAULT_WIDTH, TransformerNet, style_vector

if TYPE_CHECKING:
    from .controls import Mix

FORMAT = "fastst-model"
FORMAT_VERSION = 1


@dataclass
class StyleInfo:
    """One row of a model's style table: its name, the sha256 of the style image, a small RGB thumbnail;
    `kind` "style", "identity" (reproduces the photo) or "strength" (a step at `strength` on the way from
    the identity row to its group's row of the same `style_size`), `group` the painting it belongs to
    (several rows of one group: trained at different `style_size`s, the style image's long side), see
    fastst.controls."""

    name: str
    sha256: str = ""
    thumbnail: torch.Tensor | None = None  # uint8 (3, h, w)
    kind: str = "style"
    group: str | None = None  # None: the row's own name
    style_size: int | None = None
    strength: float | None = None  # kind "strength": the row's place between identity and its style

    def to_dict(self) -> dict[str, Any]:
        """The row as the model file stores it; the optional fields only when set."""
        d = {"name": self.name, "sha256": self.sha256, "thumbnail": self.thumbnail, "kind": self.kind}
        extra = (("group", self.group), ("style_size", self.style_size), ("strength", self.strength))
        return d | {k: v for k, v in extra if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StyleInfo:
        """A row read back from a model file (already validated by fastst.modelcheck)."""
        size, strength = d.get("style_size"), d.get("strength")
        return cls(name=str(d["name"]), sha256=d.get("sha256") or "", thumbnail=d.get("thumbnail"),
                   kind=str(d.get("kind", "style")), group=d.get("group"), style_size=None if size is None else int(size),
                   strength=None if strength is None else float(strength))


@dataclass
class StyleModel:
    """A loaded model: the network plus what it was trained on."""

    net: TransformerNet
    styles: list[StyleInfo]
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    default_strength: float = 1.0  # the strength `infer` uses when none is given (fastst.controls)

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

    def mix(self, style: int | str | dict[str, float] | None = None, strength: float | None = None,
            stroke: float | None = None) -> Mix:
        """Row weights for a style (group or row name, index, or {name: weight} blend) at a strength
        (None: the model's default) and stroke; see fastst.controls.mix."""
        from .controls import groups, mix

        first = next(iter(groups(self.styles)), 0)  # the first style, not an identity row placed first
        blend = {first if style is None else style: 1.0} if not isinstance(style, dict) else style
        try:
            return mix(self.styles, blend, self.default_strength if strength is None else strength, stroke)
        except FaststError as e:
            raise FaststError(str(e), self.path) from None

    def style_index(self, name: str | int) -> int:
        """Index of a style by name or index (an int, or a digit string that is no style's name)."""
        names = self.style_names
        if isinstance(name, str) and name in names:
            return names.index(name)
        if isinstance(name, int) or (isinstance(name, str) and name.isdecimal()):
            i = int(name)
            if 0 <= i < len(names):
                return i
        raise FaststError(f"unknown style '{name}'; styles are: {', '.join(names)}", self.path)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB chunks: what a model stores of each style image."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(path: str | os.PathLike, net: TransformerNet, styles: list[StyleInfo],
               config: dict[str, Any] | None = None, half: bool = False, default_strength: float | None = None) -> Path:
    """Write a model file atomically; `half` stores weights as fp16 (half the size, same results to ~1e-3);
    `default_strength` (None: 1, not stored) is the strength `infer` uses when given none."""
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
        "weights_sha256": weights_sha256(state),  # checked on loading: a damaged copy fails instead of painting wrong
        "styles": [s.to_dict() for s in styles],
        "config": dict(config or {}),
    }
    if default_strength is not None:
        blob["default_strength"] = float(default_strength)
    return save_torch(blob, path, "model file")


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> StyleModel:
    """Load a model file (default: the pretrained model shipped with fastst) in eval mode."""
    if path is None:
        from .pretrained import pretrained_path
        path = pretrained_path()
    path = Path(path)
    blob = read_torch_file(path, "model file", "fastst model file")
    validate_blob(blob, path, FORMAT, FORMAT_VERSION)
    arch = blob["architecture"]
    net = TransformerNet(num_styles=arch["num_styles"], residual_blocks=arch.get("residual_blocks", 5),
                         width=arch.get("width", DEFAULT_WIDTH), output=arch.get("output", "sigmoid"))
    state = {k: v.float() for k, v in blob["state_dict"].items()}
    state.setdefault("skip", torch.zeros(net.num_styles, 3))  # files from before the input skip: closed
    net.load_state_dict(state)
    styles = [StyleInfo.from_dict(s) for s in blob["styles"]]
    net.eval().requires_grad_(False).to(device)
    return StyleModel(net=net, styles=styles, config=blob.get("config", {}), path=path,
                      default_strength=float(blob.get("default_strength", 1.0)))
