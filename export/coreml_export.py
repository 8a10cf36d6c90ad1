"""Export a fastst model to a Core ML ML Program (.mlpackage, iOS 16+): RGB image in, RGB image out,
a `style` weights input, enumerated input sizes from 256 to 2048 px a side, and the style names in
the metadata. Enumerated sizes rather than a free range: range-flexible inputs with upsampling have
failed at run time on devices (apple/coremltools#970), and the network needs sides divisible by 4."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastst.atomic import atomic_folder
from fastst.errors import FaststError, first_line
from fastst.modelfile import StyleModel
from fastst.version import fastst_version

from .common import check_output_path, metadata, nbytes, verification_batch
from .wrapper import ExportNet

PRECISIONS = ("fp16", "fp32")
#: Largest difference allowed between a Core ML prediction (8-bit image out) and PyTorch, [0, 1] scale.
PREDICTION_TOLERANCE = {"fp32": 0.01, "fp16": 0.05}
_TRACE_SIZE = (64, 64)
_TRACE_CHECK_SIZE = (96, 128)


def _default_sizes() -> list[tuple[int, int]]:
    """(height, width) pairs: squares 256-2048, and 4:3, 3:2 and 16:9 in landscape and portrait."""
    squares = [256, 384, 512, 640, 768, 1024, 1280, 1536, 2048]
    landscape = [  # (width, height)
        (384, 288), (512, 384), (640, 480), (768, 576), (1024, 768), (1280, 960), (1600, 1200), (2048, 1536),  # 4:3
        (384, 256), (768, 512), (1152, 768), (1536, 1024), (2048, 1364),  # 3:2
        (456, 256), (640, 360), (960, 540), (1280, 720), (1920, 1080), (2048, 1152),  # 16:9
    ]
    sizes = [(s, s) for s in squares]
    for w, h in landscape:
        sizes += [(h, w), (w, h)]
    return sizes


#: Input sizes (height, width) the Core ML model accepts by default: 47 sizes, every side 256-2048 px.
DEFAULT_SIZES: tuple[tuple[int, int], ...] = tuple(_default_sizes())
DEFAULT_SIZE = (512, 512)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'512x512,1920x1080' (WIDTHxHEIGHT, comma-separated) -> [(height, width), ...]."""
    sizes = []
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        try:
            w, h = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise FaststError(f"bad size '{item}': expected WIDTHxHEIGHT, e.g. 1920x1080") from None
        sizes.append((h, w))
    if not sizes:
        raise FaststError("no sizes given: expected WIDTHxHEIGHT[,WIDTHxHEIGHT...]")
    return sizes


def check_sizes(sizes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Validate (height, width) pairs: sides divisible by 4 and 16-8192 px; duplicates dropped."""
    out: list[tuple[int, int]] = []
    for h, w in sizes:
        for side in (h, w):
            if side % 4 or not 16 <= side <= 8192:
                raise FaststError(f"Core ML input size {w}x{h}: each side must be a multiple of 4 between 16 and 8192")
        if (h, w) not in out:
            out.append((int(h), int(w)))
    if not out:
        raise FaststError("no Core ML input sizes given")
    return out


def check_coreml_path(path: str | os.PathLike, model: StyleModel) -> Path:
    """Refuse, before any slow work, an output that is not *.mlpackage, cannot be written, or would
    replace something that is not a Core ML package."""
    path = Path(path)
    if path.suffix != ".mlpackage":
        raise FaststError("a Core ML ML Program is saved as a folder ending in .mlpackage", path)
    path = check_output_path(path, model, "Core ML")
    if path.exists() and not (path.is_dir() and (path / "Manifest.json").is_file()):
        raise FaststError("exists and is not an .mlpackage; not replacing it", path)
    return path


def export_coreml(model: StyleModel, path: str | os.PathLike, precision: str = "fp16",
                  sizes: Sequence[tuple[int, int]] | None = None, default_size: tuple[int, int] | None = None,
                  verify: bool = True, author: str | None = None, license: str | None = None,
                  on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write `model` as a Core ML .mlpackage and return a report (size, times, checks).

    Inputs: `image` (RGB image, one of `sizes` given as (height, width); default DEFAULT_SIZES) and
    `style` (1 x num_styles float32 weights); output: `stylized` (RGB image, same size). `precision`
    'fp16' (default: half the size, what the Neural Engine runs) or 'fp32'. The package is built
    under a temporary name beside `path` and renamed into place only once it is complete.
    """
    if precision not in PRECISIONS:
        raise FaststError(f"unknown Core ML precision '{precision}'; use one of: {', '.join(PRECISIONS)}")
    path = check_coreml_path(path, model)
    sizes = check_sizes(sizes if sizes is not None else DEFAULT_SIZES)
    default_size = tuple(default_size) if default_size is not None else (DEFAULT_SIZE if DEFAULT_SIZE in sizes else sizes[0])
    if default_size not in sizes:
        raise FaststError(f"default size {default_size[1]}x{default_size[0]} is not among the input sizes")
    stage = on_stage or (lambda _: None)
    ct = _import_coremltools()

    report: dict[str, Any] = {"format": "coreml", "path": str(path), "precision": precision,
                              "styles": model.style_names, "sizes": len(sizes),
                              "input_sizes": [f"{w}x{h}" for h, w in sizes],
                              "min_side": min(min(s) for s in sizes), "max_side": max(max(s) for s in sizes)}
    t0 = time.perf_counter()
    stage("Core ML: tracing")
    traced, report["trace_error"] = _trace(model)
    stage(f"Core ML: converting ({precision})")
    mlmodel = _convert(ct, traced, model, sizes, default_size, precision)
    _describe(mlmodel, model, sizes, precision, author, license)
    stage("Core ML: saving")
    with atomic_folder(path, "Core ML package") as tmp:
        try:
            with _quiet():
                mlmodel.save(str(tmp))
        except OSError as e:
            raise FaststError(f"cannot write the Core ML package ({e.strerror or e})", path) from None
        report["export_s"] = time.perf_counter() - t0
        spec = ct.utils.load_spec(str(tmp))
        check_spec(spec, model, sizes)
        if verify:
            report.update(_predict_check(ct, tmp, model, precision, sizes, stage))
        report["bytes"] = nbytes(tmp)
    return report


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence coremltools' progress bars, version warnings and log lines (they are not ours to show)."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _import_coremltools() -> Any:
    try:
        with _quiet():
            import coremltools as ct
    except ImportError:
        raise FaststError("Core ML export needs the 'coremltools' package") from None
    return ct


def _trace(model: StyleModel) -> tuple[torch.jit.ScriptModule, float]:
    """torch.jit.trace of the network with a 0-255 output; also return the traced graph's max error
    against TransformerNet at a size other than the trace size (catches baked-in shapes)."""
    net = copy.deepcopy(model.net).cpu().float().eval()
    wrapper = ExportNet(net, pad=False, scale=255.0, fused_norm=False).eval()
    n = net.num_styles
    g = torch.Generator().manual_seed(0)
    example = (torch.rand(1, 3, *_TRACE_SIZE, generator=g), torch.full((1, n), 1.0 / n))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        image, style = verification_batch(n, *_TRACE_CHECK_SIZE)
        err = float((traced(image, style) / 255.0 - net(image, style)).abs().max())
    if not err <= 1e-4:
        raise FaststError(f"the traced network differs from PyTorch by {err:.2e} at another input size")
    return traced, err


def _convert(ct: Any, traced: torch.jit.ScriptModule, model: StyleModel, sizes: list[tuple[int, int]],
             default_size: tuple[int, int], precision: str) -> Any:
    """ct.convert to an iOS 16 ML Program with image input/output and enumerated input sizes."""
    n = model.net.num_styles
    if len(sizes) == 1:  # coremltools wants two or more enumerated shapes: one size is a fixed shape
        shapes = ct.Shape(shape=(1, 3, *sizes[0]))
    else:
        shapes = ct.EnumeratedShapes(shapes=[(1, 3, h, w) for h, w in sizes], default=(1, 3, *default_size))
    try:
        with _quiet():
            return ct.convert(
                traced, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                inputs=[ct.ImageType(name="image", shape=shapes, scale=1.0 / 255.0, color_layout=ct.colorlayout.RGB),
                        ct.TensorType(name="style", shape=(1, n), dtype=np.float32)],
                outputs=[ct.ImageType(name="stylized", color_layout=ct.colorlayout.RGB)],
                compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32)
    except Exception as e:
        raise FaststError(f"coremltools conversion failed: {type(e).__name__}: {first_line(e, 200)}") from None


def _describe(mlmodel: Any, model: StyleModel, sizes: list[tuple[int, int]], precision: str,
              author: str | None, license: str | None) -> None:
    """Author, licence, descriptions, version and the user-defined metadata (styles, sizes, training)."""
    names = model.style_names
    order = ", ".join(f"{i}={name}" for i, name in enumerate(names))
    mlmodel.author = author or str(model.config.get("author", "fastst"))
    mlmodel.license = license or str(model.config.get("license", "MIT"))
    mlmodel.version = fastst_version()
    mlmodel.short_description = (f"fastst fast style transfer, {len(names)} style{'s' if len(names) != 1 else ''}: "
                                 f"{', '.join(names)}. Set `style` to a one-hot vector to pick one, or to "
                                 "non-negative weights summing to 1 to blend.")
    mlmodel.input_description["image"] = (
        f"RGB image to stylize; {len(sizes)} enumerated sizes, every side {min(min(s) for s in sizes)}-"
        f"{max(max(s) for s in sizes)} px (see metadata 'sizes', WIDTHxHEIGHT)" if len(sizes) > 1
        else f"RGB image to stylize, {sizes[0][1]}x{sizes[0][0]} px (WIDTHxHEIGHT)")
    mlmodel.input_description["style"] = f"style weights, 1 x {len(names)} float32; order: {order}"
    mlmodel.output_description["stylized"] = "stylized RGB image, same size as the input"
    meta = metadata(model)
    meta["sizes"] = json.dumps([f"{w}x{h}" for h, w in sizes])
    meta["precision"] = precision
    for key, value in meta.items():
        mlmodel.user_defined_metadata[key] = value


def check_spec(spec: Any, model: StyleModel, sizes: Sequence[tuple[int, int]]) -> None:
    """Check a saved package's spec: ML Program, input/output names and types, sizes, style metadata."""
    desc = spec.description
    problems = []
    if spec.WhichOneof("Type") != "mlProgram":
        problems.append("not an ML Program")
    if [i.name for i in desc.input] != ["image", "style"] or [o.name for o in desc.output] != ["stylized"]:
        problems.append("unexpected input/output names")
    else:
        image, style = desc.input
        image_type = image.type.imageType
        got = sorted((s.height, s.width) for s in image_type.enumeratedSizes.sizes) or [(image_type.height,
                                                                                        image_type.width)]
        if got != sorted(sizes):
            problems.append("enumerated sizes differ")
        if list(style.type.multiArrayType.shape) != [1, model.net.num_styles]:
            problems.append("style input shape differs")
        if desc.output[0].type.WhichOneof("Type") != "imageType":
            problems.append("output is not an image")
    if json.loads(desc.metadata.userDefined.get("styles", "null")) != model.style_names:
        problems.append("style names missing from the metadata")
    if problems:
        raise FaststError(f"Core ML package failed its checks: {'; '.join(problems)}")


def _predict_check(ct: Any, package: Path, model: StyleModel, precision: str, sizes: list[tuple[int, int]],
                   stage: Callable[[str], None]) -> dict[str, Any]:
    """On macOS, compare a Core ML prediction with PyTorch; elsewhere say why it was skipped."""
    if platform.system() != "Darwin":
        return {"prediction_check": "skipped: Core ML predictions need macOS"}
    from PIL import Image

    stage("Core ML: prediction vs PyTorch")
    h, w = min(sizes, key=lambda s: s[0] * s[1])
    image, style = verification_batch(model.net.num_styles, h, w)
    image = (image * 255).round() / 255  # what an 8-bit image carries
    with _quiet():
        mlmodel = ct.models.MLModel(str(package), compute_units=ct.ComputeUnit.CPU_ONLY)
    errors = []
    for i in range(2):
        pil = Image.fromarray((image[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        out = mlmodel.predict({"image": pil, "style": style[i:i + 1].numpy()})["stylized"]
        got = torch.from_numpy(np.asarray(out.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
        with torch.no_grad():
            ref = model.net(image[i:i + 1], style[i:i + 1])[0].float().cpu()
        errors.append(float((got - ref).abs().max()))
    err = max(errors)
    if not err <= PREDICTION_TOLERANCE[precision]:
        raise FaststError(f"Core ML prediction differs from PyTorch by {err:.3f} "
                          f"(tolerance {PREDICTION_TOLERANCE[precision]}); not writing the export")
    return {"prediction_check": f"{w}x{h}, one-hot and blend", "max_error": err}
