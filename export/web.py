"""`fastst export MODEL --web DIR`: a model as a self-contained static web page. The page runs the ONNX
export in the browser with onnxruntime-web (WebGPU where the browser has it, else WebAssembly), takes a
photo or the webcam, and offers the model's styles, blends, strength and stroke (see docs/web.md)."""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fastst.atomic import atomic_folder
from fastst.controls import KINDS
from fastst.errors import FaststError, shown_path
from fastst.modelfile import StyleModel
from fastst.paths import check_writable_folder, inside
from fastst.version import fastst_version

from . import web_runtime
from .common import human_size

ASSETS = Path(__file__).with_name("web_assets")
#: The page's own files, copied from ASSETS.
PAGE_FILES = ("index.html", "app.js", "controls.js", "style.css")
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "model.json"
RUNTIME_FOLDER = "ort"
#: Max abs difference (on [0, 1]) allowed between the site's fp16-weight graph and PyTorch in fp32 before
#: the site falls back to fp32 weights: one 8-bit step, so the page's pixels stay within one level.
HALF_WEIGHTS_TOLERANCE = 1.0 / 255


def manifest(model: StyleModel, weights: str, title: str) -> dict[str, Any]:
    """What the page needs to know beside the graph: the style table rows (name, kind, group, style_size,
    and a strength row's strength: the controls spec's fields, absent ones defaulted), the default
    strength, the output head."""
    rows = []
    for i, style in enumerate(model.styles):
        kind = getattr(style, "kind", None) or "style"
        if kind not in KINDS:
            raise FaststError(f"style row {i} ('{style.name}') has unknown kind '{kind}'", model.path)
        size = getattr(style, "style_size", None)
        rows.append({"name": style.name, "kind": kind, "group": getattr(style, "group", None) or style.name,
                     "style_size": int(size) if size else None,
                     "thumbnail": f"styles/{i}.png" if _has_thumbnail(style) else None}
                    | ({"strength": float(style.strength)} if kind == "strength" else {}))
    if sum(r["kind"] == "identity" for r in rows) > 1:
        raise FaststError("a model has at most one identity row", model.path)
    if all(r["kind"] == "identity" for r in rows):
        raise FaststError("the model has no style rows, only an identity row", model.path)
    strength = default_strength(model)
    return {"format": "fastst-web", "version": 1, "title": title, "rows": rows, "default_strength": strength,
            "output": model.net.output, "width": model.net.width, "model": MODEL_FILE, "weights": weights,
            "runtime": f"{web_runtime.PACKAGE} {web_runtime.VERSION}", "fastst_version": fastst_version()}


def default_strength(model: StyleModel) -> float:
    """The model's default strength (1.0 for model files from before the strength controls)."""
    value = float(getattr(model, "default_strength", 1.0))
    if not math.isfinite(value) or not 0.0 <= value <= 1.5:
        raise FaststError(f"default strength {value} is outside [0, 1.5]", model.path)
    return value


def half_weights(proto: Any) -> int:
    """Store every float32 initializer of more than one value as float16 behind a Cast back to float32,
    in place: half the download, while ONNX Runtime folds the casts when it loads the graph, so it computes
    in float32 as before. Tensors fp16 cannot hold (|x| > 65504) stay float32. Returns tensors converted."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    casts, inits, done = [], [], 0
    for init in graph.initializer:
        array = numpy_helper.to_array(init) if init.data_type == TensorProto.FLOAT else None
        if array is None or array.size < 2 or not np.all(np.abs(array) <= 65504):
            inits.append(init)
            continue
        half = numpy_helper.from_array(array.astype(np.float16), f"{init.name}__fp16")
        inits.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__to_fp32"))
        done += 1
    del graph.initializer[:]
    graph.initializer.extend(inits)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return done


def write_site(model: StyleModel, out: str | os.PathLike, runtime: str | os.PathLike | None = None,
               weights: str = "auto", opset: int | None = None, verify: bool = True,
               on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the page for `model` into the new (or empty) folder `out` and return a report.

    `weights`: "fp16" (half the download, float32 compute), "fp32", or "auto": fp16 unless that moves
    the output by more than HALF_WEIGHTS_TOLERANCE against PyTorch. `runtime`: a folder holding
    onnxruntime-web's files (default: fetched once from the npm registry, see web_runtime). The site
    appears only when complete.
    """
    from .onnx_export import DEFAULT_OPSET, export_onnx, verify_onnx

    if weights not in ("auto", "fp16", "fp32"):
        raise FaststError(f"unknown web weights precision '{weights}' (use auto, fp16 or fp32)")
    out = check_site_folder(Path(out), model)
    stage = on_stage or (lambda _: None)
    stage("web: onnxruntime-web files")
    runtime_dir = web_runtime.runtime_files(runtime)
    title = model.path.stem if model.path is not None else "fastst"
    report: dict[str, Any] = {"format": "web", "path": str(out), "runtime": f"{web_runtime.PACKAGE} {web_runtime.VERSION}"}
    manifest(model, "fp32", title)  # refuse a bad style table before the slow export
    with _site_folder(out) as tmp:
        t0 = time.perf_counter()
        fp32 = tmp / "model-fp32.onnx"
        onnx_report = export_onnx(model, fp32, opset=opset or DEFAULT_OPSET, verify=verify, on_stage=stage)
        report["opset"] = onnx_report["opset"]
        chosen = "fp32"
        if weights != "fp32":
            stage("web: fp16 weights")
            chosen, error = _try_half(model, fp32, tmp / MODEL_FILE, verify, weights == "fp16", verify_onnx)
            if error is not None:
                report["half_error"] = error
        if chosen == "fp32":
            os.replace(fp32, tmp / MODEL_FILE)
        else:
            fp32.unlink()
        report["max_error"] = onnx_report.get("max_error")
        report["weights"] = chosen
        report["model_bytes"] = (tmp / MODEL_FILE).stat().st_size
        report["export_s"] = time.perf_counter() - t0
        stage("web: page and runtime")
        info = manifest(model, chosen, title)
        (tmp / MANIFEST_FILE).write_text(json.dumps(info, indent=1) + "\n")
        _write_thumbnails(model, tmp / "styles")
        for name in PAGE_FILES:
            shutil.copyfile(ASSETS / name, tmp / name)
        report["runtime_bytes"] = web_runtime.copy_runtime(runtime_dir, tmp / RUNTIME_FOLDER)
        report["bytes"] = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
    return report


@contextlib.contextmanager
def _site_folder(out: Path) -> Iterator[Path]:
    """The folder the page is built in, moved onto `out` (new or empty) when whole
    (`fastst.atomic.atomic_folder`); an error naming a file in it names `out` instead."""
    with atomic_folder(out, "web page") as tmp:
        tmp.mkdir()
        try:
            yield tmp
        except FaststError as e:
            if e.path is not None and inside(e.path, tmp):
                raise FaststError(str(e).removeprefix(f"{shown_path(e.path)}: "), out) from None
            raise


def _try_half(model: StyleModel, fp32: Path, dest: Path, verify: bool, forced: bool,
              verify_onnx: Callable[..., list[dict[str, Any]]]) -> tuple[str, float | None]:
    """Write `fp32` with fp16 weights to `dest`; return ('fp16', error) if it stays within tolerance of
    PyTorch (or `forced`), else ('fp32', error) and no `dest`."""
    import onnx

    proto = onnx.load(str(fp32))
    half_weights(proto)
    onnx.save(proto, str(dest))
    if not verify:
        return "fp16", None
    error = max(c["max_abs"] for c in verify_onnx(dest, model))
    if error <= HALF_WEIGHTS_TOLERANCE or forced:
        return "fp16", error
    dest.unlink()
    return "fp32", error


def check_site_folder(out: Path, model: StyleModel) -> Path:
    """Refuse, before any slow work, a site folder that is a file, not empty, or not creatable."""
    if out.exists() and not out.is_dir():
        raise FaststError("is a file; give a folder for the web page", out)
    if out.is_dir() and any(out.iterdir()):
        raise FaststError("folder is not empty; give a new or empty folder for the web page", out)
    check_writable_folder(out.parent)
    if model.path is not None and Path(model.path).resolve().is_relative_to(out.resolve()):
        raise FaststError("the web page folder holds the input model", out)
    return out


def _write_thumbnails(model: StyleModel, folder: Path) -> None:
    """Each style's stored thumbnail as styles/<row>.png, for the page's style picker."""
    from PIL import Image

    for i, style in enumerate(model.styles):
        if not _has_thumbnail(style):
            continue
        folder.mkdir(exist_ok=True)
        array = style.thumbnail.permute(1, 2, 0).contiguous().numpy()
        Image.fromarray(array, "RGB").save(folder / f"{i}.png")


def _has_thumbnail(style: Any) -> bool:
    """A row the page may show a thumbnail of: one with a stored thumbnail that is no strength row
    (those are steps on a style's strength path, never picked)."""
    return style.thumbnail is not None and getattr(style, "kind", "style") != "strength"


def summary(report: dict[str, Any]) -> str:
    """The report as the three lines `fastst export --web` prints: what was written, how the model was
    checked, how to open it."""
    half = report.get("half_error")
    if half is not None:
        check = (f"fp16 weights vs PyTorch fp32: max abs error {half:.1e} on [0, 1]"
                 + ("" if report["weights"] == "fp16" else f" (over {HALF_WEIGHTS_TOLERANCE:.1e}: fp32 weights kept)"))
    elif report.get("max_error") is not None:
        check = f"onnxruntime vs PyTorch: max abs error {report['max_error']:.1e} on [0, 1]"
    else:
        check = "not verified (--no-verify)"
    return (f"web      {report['path']}  {human_size(report['bytes'])} (model {human_size(report['model_bytes'])}, "
            f"{report['weights']} weights; {report['runtime']} {human_size(report['runtime_bytes'])})\n"
            f"         {check}\n"
            f"         open it: fastst serve {report['path']}, then http://localhost:8000")
