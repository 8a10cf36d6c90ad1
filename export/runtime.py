"""The ONNX Runtime backend: exported .onnx models run by onnxruntime, and .fst models exported once
and cached so they can run there too. On a 2-core CPU ONNX Runtime ran the network 1.5x (512²) to
1.7x (1024²) faster than eager PyTorch. `register()` plugs it into fastst's backend registry."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fastst.backbones import cache_dir
from fastst.errors import FaststError, first_line
from fastst.inference.backends import Backend, register_backend
from fastst.modelcheck import weights_sha256
from fastst.modelfile import StyleInfo, StyleModel
from fastst.version import fastst_version


class OnnxModel:
    """An exported .onnx model run by ONNX Runtime: inputs `image` (N,3,H,W float32 in [0,1]) and
    `style` (N,S), output `stylized`; style names from the `styles` metadata property (JSON list)."""

    backend = "onnx"
    # The style lookup is the same as a .fst model's: borrow StyleModel's implementation.
    style_weights = StyleModel.style_weights
    style_index = StyleModel.style_index
    style_names = StyleModel.style_names
    mix = StyleModel.mix

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FaststError("no such model file" if not self.path.exists() else "not a file", self.path)
        self.session = _session(self.path, device, threads)
        inputs = {i.name: i for i in self.session.get_inputs()}
        if set(inputs) != {"image", "style"} or [o.name for o in self.session.get_outputs()] != ["stylized"]:
            raise FaststError("not a fastst ONNX export (expected inputs image, style and output stylized)", self.path)
        num_styles = inputs["style"].shape[1]
        meta = self.session.get_modelmeta().custom_metadata_map
        names = _style_names(meta, num_styles, self.path)
        # the style images' hashes and the training settings (their file names): what --refine looks them up by
        hashes = _json(meta.get("style_sha256"), list)
        if not (hashes and len(hashes) == len(names) and all(isinstance(h, str) for h in hashes)):
            hashes = [""] * len(names)
        self.styles = _rows(meta, names)
        for info, h in zip(self.styles, hashes):
            info.sha256 = h
        self.config: dict = _json(meta.get("training"), dict) or {}
        self.default_strength = float(json.loads(meta.get("default_strength", "1")))
        batch = inputs["image"].shape[0]
        self.max_batch = batch if isinstance(batch, int) else None

    def __call__(self, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) float in [0,1], (N,S) weights -> (N,3,H,W) float32 CPU tensor."""
        step = self.max_batch or images.shape[0]
        outs = []
        for i in range(0, images.shape[0], step):
            feed = {"image": np.ascontiguousarray(images[i:i + step].float().cpu().numpy()),
                    "style": np.ascontiguousarray(weights[i:i + step].float().cpu().numpy())}
            outs.append(torch.from_numpy(self.session.run(["stylized"], feed)[0]))
        return torch.cat(outs)


def _session(path: Path, device: str, threads: int | None) -> object:
    """An onnxruntime session on the CPU, or CUDA first for a cuda device."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise FaststError("the ONNX Runtime backend needs the 'onnxruntime' package") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise FaststError("onnxruntime has no CUDA provider here (install onnxruntime-gpu); use the cpu device")
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as e:
        raise FaststError(f"not a loadable ONNX model ({first_line(e)})", path) from None


def _json(text: str | None, kind: type) -> object:
    """A metadata property parsed as JSON if it is a `kind`, else None (metadata may be anything)."""
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


def _style_names(meta: dict[str, str], num_styles: object, path: Path) -> list[str]:
    """The style names the export's `styles` metadata lists, else style0, style1, ..."""
    try:
        names = json.loads(meta["styles"])
        assert isinstance(names, list) and all(isinstance(n, str) for n in names)
    except (KeyError, ValueError, AssertionError):
        if not isinstance(num_styles, int):
            raise FaststError("ONNX model has no 'styles' metadata and no fixed style count", path) from None
        names = [f"style{i}" for i in range(num_styles)]
    if isinstance(num_styles, int) and num_styles != len(names):
        raise FaststError(f"ONNX model metadata names {len(names)} styles but its input takes {num_styles}", path)
    return names


def _rows(meta: dict[str, str], names: list[str]) -> list[StyleInfo]:
    """The style table (kind, group, style size per row) from the `rows` metadata, where the export has it."""
    try:
        rows = json.loads(meta["rows"])
        infos = [StyleInfo(name=str(r["name"]), kind=str(r.get("kind", "style")), group=r.get("group"),
                           style_size=r.get("style_size"), strength=r.get("strength")) for r in rows]
    except (KeyError, ValueError, TypeError, AttributeError):
        return [StyleInfo(n) for n in names]
    return infos if [i.name for i in infos] == names else [StyleInfo(n) for n in names]


def cached_onnx_path(model: StyleModel) -> Path:
    """Where `model`'s ONNX export is cached: $FASTST_CACHE/onnx, keyed by a hash of its weights,
    style names, torch's and fastst's versions (a new one may export a different graph)."""
    key = json.dumps([model.style_names, torch.__version__, fastst_version(), weights_sha256(model.net.state_dict())])
    return cache_dir() / "onnx" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.onnx"


def onnx_for(model: StyleModel, device: str = "cpu",
             on_export: Callable[[Path], None] | None = None) -> OnnxModel:
    """`model` as an ONNX Runtime model, exported once (~30 s, which pays off on folders and video)
    and cached (see `cached_onnx_path`); `on_export(path)` is called before an export starts."""
    path = cached_onnx_path(model)
    if not path.is_file():
        from .onnx_export import export_onnx

        if on_export is not None:
            on_export(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, path)
    return OnnxModel(path, device=device)


def available() -> bool:
    """Whether the packages the ONNX Runtime backend needs (to export and to run) are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnxscript"))


def backend(on_export: Callable[[Path], None] | None = None) -> Backend:
    """This backend as a fastst `Backend`; `on_export` as in `onnx_for`."""
    return Backend(name="onnx", suffixes=(".onnx",), open=lambda path, device: OnnxModel(path, device=device),
                   convert=lambda model, device: onnx_for(model, device, on_export), available=available)


def register(on_export: Callable[[Path], None] | None = None) -> None:
    """Register ONNX Runtime with fastst: `fastst.stylize` and `Stylizer` then open .onnx files."""
    register_backend(backend(on_export))
