"""Export a fastst model to one self-contained ONNX file (dynamic batch, height and width) and check
it: onnx.checker, then onnxruntime against PyTorch on sizes and style vectors the export never saw."""
from __future__ import annotations

import copy
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fastst.atomic import DISK_ERRORS, atomic_path
from fastst.errors import FaststError, first_line
from fastst.modelfile import StyleModel

from .common import check_output_path, metadata, nbytes, verification_batch
from .wrapper import ExportNet

DEFAULT_OPSET = 20
#: torch's exporter writes opset 18+ (it cannot down-convert reflection Pad to 17).
MIN_OPSET = 18
#: Max abs difference allowed between onnxruntime and PyTorch, on the [0, 1] scale.
TOLERANCE = 1e-3
#: The fp16 variant computes in half precision; this only catches a broken export.
FP16_TOLERANCE = 2e-2
#: Checked sizes (H, W): neither is the export size, one is not a multiple of 4.
VERIFY_SIZES = ((67, 131), (96, 80))
_EXAMPLE_SIZE = (72, 88)


def max_opset() -> int:
    """The newest opset torch's exporter says it writes (its version converter raises past it)."""
    try:
        from torch.onnx import _constants
        return int(_constants.ONNX_MAX_OPSET)
    except (ImportError, AttributeError):
        return DEFAULT_OPSET


def check_opset(opset: int) -> None:
    """FaststError unless `opset` is one torch's exporter can write here (checked before any work)."""
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= max_opset():
        raise FaststError(f"ONNX opset must be from {MIN_OPSET} to {max_opset()}, got {opset} (torch's exporter "
                          f"cannot write reflection padding before {MIN_OPSET} nor convert past {max_opset()})")


def check_onnx_path(path: str | os.PathLike, model: StyleModel) -> Path:
    """Refuse, before any slow work, an output `check_output_path` refuses or whose name does not end
    in .onnx (what fastst and other runtimes open ONNX models by)."""
    path = check_output_path(path, model, "ONNX")
    if path.suffix.lower() != ".onnx":
        raise FaststError("an ONNX export is saved as a file ending in .onnx", path)
    return path


def export_onnx(model: StyleModel, path: str | os.PathLike, opset: int = DEFAULT_OPSET, fp16: bool = False,
                verify: bool = True, on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write `model` as a single ONNX file and return a report (size, times, verification errors).

    Inputs `image` (N,3,H,W float32 in [0,1]) and `style` (N,num_styles float32), output `stylized`
    (N,3,H,W float32 in [0,1]). `fp16` stores weights and computes in half precision (about half
    the size) behind the same float32 inputs and outputs, so it runs on onnxruntime's CPU provider
    too. The file appears only once it has passed the checks.
    """
    check_opset(opset)
    path = check_onnx_path(path, model)
    try:
        import onnx
    except ImportError:
        raise FaststError("ONNX export needs the 'onnx', 'onnxscript' and 'onnxruntime' packages") from None
    stage = on_stage or (lambda _: None)
    dtype = torch.float16 if fp16 else torch.float32
    wrapper = ExportNet(copy.deepcopy(model.net).cpu().to(dtype).eval(), pad=True, dtype=dtype)
    report: dict[str, Any] = {"format": "onnx", "path": str(path), "opset": opset,
                              "precision": "fp16" if fp16 else "fp32", "styles": model.style_names}
    with atomic_path(path) as tmp:
        t0 = time.perf_counter()
        stage("ONNX: exporting the graph")
        try:
            _torch_export(wrapper, tmp, opset, model.net.num_styles)
        except FaststError as e:  # named after the file being written, not its temporary name
            raise FaststError(str(e), path) from None
        stage("ONNX: metadata and checker")
        try:
            proto = onnx.load(str(tmp))
        except Exception as e:
            raise FaststError(f"cannot read back the exported ONNX graph ({type(e).__name__})", path) from None
        got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        if got != opset:
            raise FaststError(f"torch.onnx.export wrote opset {got} instead of {opset}; try opset {got}", path)
        _annotate(proto, model, fp16)
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as e:
            raise FaststError(f"exported ONNX graph failed onnx.checker ({first_line(e, 1000)})", path) from None
        onnx.save(proto, str(tmp))
        report["export_s"] = time.perf_counter() - t0
        if verify:
            stage("ONNX: onnxruntime vs PyTorch")
            t1 = time.perf_counter()
            checks = verify_onnx(tmp, model)
            report["verify_s"] = time.perf_counter() - t1
            report["checks"] = checks
            report["max_error"] = max(c["max_abs"] for c in checks)
            tol = FP16_TOLERANCE if fp16 else TOLERANCE
            report["tolerance"] = tol
            if not report["max_error"] <= tol:
                raise FaststError(f"onnxruntime output differs from PyTorch by {report['max_error']:.2e} "
                                  f"(tolerance {tol:.0e}); not writing the export", path)
        report["bytes"] = nbytes(tmp)
    return report


def _torch_export(wrapper: ExportNet, out: Path, opset: int, num_styles: int) -> None:
    """torch.onnx.export (dynamo) with dynamic batch/height/width, weights inside the one file."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    height = torch.export.Dim("height", min=16, max=16384)
    width = torch.export.Dim("width", min=16, max=16384)
    g = torch.Generator().manual_seed(0)
    example = (torch.rand(2, 3, *_EXAMPLE_SIZE, generator=g), torch.full((2, num_styles), 1.0 / num_styles))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, example, str(out), dynamo=True, external_data=False, opset_version=opset,
                input_names=["image", "style"], output_names=["stylized"], verbose=False,
                dynamic_shapes={"image": {0: batch, 2: height, 3: width}, "style": {0: batch}})
    except ImportError as e:
        raise FaststError(f"ONNX export needs the 'onnxscript' package ({e})") from None
    except OSError as e:
        if e.errno in DISK_ERRORS:
            raise  # the destination's problem: atomic_path names it
        raise FaststError(f"torch.onnx.export failed at opset {opset}: {type(e).__name__}: {first_line(e, 200)}") from None
    except Exception as e:
        raise FaststError(f"torch.onnx.export failed at opset {opset}: "
                          f"{type(e).__name__}: {first_line(e, 200)}") from None


def _annotate(proto: Any, model: StyleModel, fp16: bool) -> None:
    """Metadata properties, readable dimension names and doc strings on the graph's inputs and output."""
    import onnx

    meta = metadata(model)
    meta["precision"] = "fp16" if fp16 else "fp32"
    onnx.helper.set_model_props(proto, meta)
    names = ", ".join(f"{i}={n}" for i, n in enumerate(model.style_names))
    proto.doc_string = (f"fastst style transfer ({len(model.style_names)} styles: {names}). "
                        "image: N x 3 x H x W RGB in [0, 1], any H and W >= 16; style: N x S weights "
                        "(one-hot selects a style, non-negative weights summing to 1 blend); "
                        "stylized: N x 3 x H x W RGB in [0, 1].")
    graph = proto.graph
    docs = {"image": "RGB image batch, float32 in [0, 1], N x 3 x H x W",
            "style": f"style weights, float32, N x {len(model.style_names)}; order: {names}",
            "stylized": "stylized RGB image batch, float32 in [0, 1], same size as image"}
    for value in list(graph.input) + list(graph.output):
        value.doc_string = docs.get(value.name, "")
    out = graph.output[0].type.tensor_type
    out.ClearField("shape")
    for name in ("batch", 3, "height", "width"):
        dim = out.shape.dim.add()
        if isinstance(name, int):
            dim.dim_value = name
        else:
            dim.dim_param = name


def verify_onnx(path: str | os.PathLike, model: StyleModel,
                sizes: tuple[tuple[int, int], ...] = VERIFY_SIZES) -> list[dict[str, Any]]:
    """Run the ONNX file in onnxruntime (CPU) and PyTorch at `sizes` with a one-hot and a blended
    style vector; return one {size, style, max_abs} per case (max abs error on the [0, 1] scale)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise FaststError(f"onnxruntime cannot load the export ({first_line(e, 200)})", path) from None
    net = model.net
    device = next(net.parameters()).device
    checks = []
    for h, w in sizes:
        image, style = verification_batch(net.num_styles, h, w)
        with torch.no_grad():
            ref = net(image.to(device), style.to(device)).float().cpu()
        out = torch.from_numpy(session.run(["stylized"], {"image": image.numpy(), "style": style.numpy()})[0])
        if out.shape != ref.shape:
            raise FaststError(f"onnxruntime returned shape {tuple(out.shape)} for input {tuple(image.shape)}", path)
        for i, kind in enumerate(("one-hot", "blend")):
            checks.append({"size": f"{h}x{w}", "style": kind, "max_abs": float((out[i] - ref[i]).abs().max())})
    return checks
