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
from typing import Any

import numpy as np
import torch

from fastst.backbones import cache_dir
from fastst.controls import MAX_STRENGTH
from fastst.errors import FaststError, first_line
from fastst.inference.backends import Backend, register_backend
from fastst.modelcheck import MAX_STYLES, check_styles, check_tensors, weights_sha256
from fastst.modelfile import StyleInfo, StyleModel
from fastst.version import fastst_version


class OnnxModel:
    """An exported .onnx model run by ONNX Runtime: inputs `image` (N,3,H,W float32 in [0,1]) and
    `style` (N,S), output `stylized`; the style table, training settings and default strength from the
    metadata properties `export.common.metadata` writes (JSON). A property the file lacks has a default
    (style0, style1, ...; plain style rows; strength 1); one it holds must be valid, like every stored
    weight (finite), or opening it is a FaststError naming the file."""

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
        if not _fastst_interface(inputs, self.session.get_outputs()):
            raise FaststError("not a fastst ONNX export (expected float inputs image N x 3 x H x W and style N x S, "
                              "output stylized)", self.path)
        _check_weights(self.path)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.styles = _style_table(meta, inputs["style"].shape[1], self.path)
        self.config: dict = _metadata(meta, "training", dict, "a JSON object", self.path) or {}
        strength = _metadata(meta, "default_strength", (int, float), f"a number in [0, {MAX_STRENGTH:g}]", self.path,
                             lambda s: 0 <= s <= MAX_STRENGTH)  # NaN and infinity fail too
        self.default_strength = 1.0 if strength is None else float(strength)
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


def _check_weights(path: Path) -> None:
    """FaststError unless every floating-point tensor the ONNX file stores (initializers and Constant
    nodes) is finite, as `check_tensors` requires of a .fst file's weights: a NaN weight paints black."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
        stored = list(graph.initializer) + [a.t for n in graph.node if n.op_type == "Constant"
                                            for a in n.attribute if a.type == onnx.AttributeProto.TENSOR]
        arrays = {t.name or f"constant {i}": numpy_helper.to_array(t) for i, t in enumerate(stored)}
    except Exception as e:
        raise FaststError(f"not a loadable ONNX model ({first_line(e)})", path) from None
    floats = {name: torch.tensor(a) for name, a in arrays.items() if a.dtype in (np.float16, np.float32, np.float64)}
    check_tensors(floats, None, path, "ONNX model weights")


def _fastst_interface(inputs: dict[str, Any], outputs: list[Any]) -> bool:
    """Whether a session's inputs and outputs are a fastst export's: float inputs `image` (rank 4, 3
    channels) and `style` (rank 2), one output `stylized`."""
    if set(inputs) != {"image", "style"} or [o.name for o in outputs] != ["stylized"]:
        return False
    image, style = inputs["image"], inputs["style"]
    channels = image.shape[1] if len(image.shape) == 4 else 0
    return image.type == style.type == "tensor(float)" and len(style.shape) == 2 \
        and (channels == 3 or not isinstance(channels, int))  # a dimension named, not fixed, or 3


def _metadata(meta: dict[str, str], key: str, kind: type | tuple[type, ...], what: str, path: Path,
              valid: Callable[[Any], bool] = lambda _: True) -> Any:
    """Metadata property `key` parsed as JSON; None when the export has none (an older fastst's, or
    another tool's), FaststError naming the file unless it is `what`: a JSON `kind` (never a boolean)
    that is `valid`."""
    text = meta.get(key)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, kind) or isinstance(value, bool) or not valid(value):
        raise FaststError(f"model metadata '{key}' is {text[:40]!r}, not {what}", path)
    return value


def _style_table(meta: dict[str, str], num_styles: object, path: Path) -> list[StyleInfo]:
    """The style table: names from the `styles` metadata (else style0, style1, ...), each row's kind,
    group, style size and strength from `rows` (else plain style rows) and its style image's hash from
    `style_sha256` (else none; what --refine finds the image by), checked as a .fst file's table is."""
    if isinstance(num_styles, int) and not 1 <= num_styles <= MAX_STYLES:
        raise FaststError(f"ONNX model's style input takes {num_styles} styles; a model has 1 to {MAX_STYLES}", path)
    names = _metadata(meta, "styles", list, "a JSON list of style names", path)
    if names is None:
        if not isinstance(num_styles, int):
            raise FaststError("ONNX model has no 'styles' metadata and no fixed style count", path)
        names = [f"style{i}" for i in range(num_styles)]
    if isinstance(num_styles, int) and num_styles != len(names):
        raise FaststError(f"ONNX model metadata names {len(names)} styles but its input takes {num_styles}", path)
    rows = _metadata(meta, "rows", list, "a JSON list of style rows", path)
    rows = check_styles([{"name": n} for n in names] if rows is None else rows, len(names), path,
                        "model metadata 'rows'")
    if [r["name"] for r in rows] != names:
        raise FaststError("model metadata 'rows' names other styles than its 'styles'", path)
    hashes = _metadata(meta, "style_sha256", list, "a JSON list of hashes", path) or [""] * len(rows)
    if len(hashes) != len(rows) or not all(isinstance(h, str) for h in hashes):
        raise FaststError(f"model metadata 'style_sha256' is not a list of {len(rows)} hashes (text)", path)
    return [StyleInfo.from_dict(r | {"sha256": h}) for r, h in zip(rows, hashes)]


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
