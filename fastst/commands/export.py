"""`fastst export`: write a model as ONNX (onnxruntime: servers, browsers, Android) and/or Core ML
(.mlpackage for iPhone apps), check each export against PyTorch, print sizes and errors."""
from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import FaststError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export", help="export a model to ONNX and/or Core ML",
        description="Export a fastst model for runtimes without Python: ONNX (one self-contained file, "
                    "dynamic batch/height/width, checked in onnxruntime) and Core ML (ML Program .mlpackage, "
                    "iOS 16+, RGB image in and out, enumerated sizes 256-2048 px a side).")
    p.add_argument("model", nargs="?", metavar="MODEL", help="model file (.fst); default: the pretrained model")
    p.add_argument("--onnx", metavar="OUT.onnx", help="write an ONNX model here")
    p.add_argument("--coreml", metavar="OUT.mlpackage", help="write a Core ML package here")
    p.add_argument("--fp16", action="store_true",
                   help="ONNX: store and compute in half precision (about half the size; float32 inputs and outputs)")
    p.add_argument("--coreml-precision", default="fp16", metavar="fp16|fp32",
                   help="Core ML weights and compute precision (default: fp16)")
    p.add_argument("--coreml-sizes", metavar="WxH,...",
                   help="Core ML input sizes, e.g. 1920x1080,1080x1920 (sides multiples of 4; "
                        "default: 47 sizes, squares and 4:3, 3:2, 16:9 both ways, 256-2048 px a side)")
    p.add_argument("--web", metavar="DIR", help="write a web page that runs the model in the browser (photo or "
                   "webcam; WebGPU or WebAssembly) into this new or empty folder; see docs/web.md")
    p.add_argument("--web-runtime", metavar="DIR", help="with --web: a folder holding onnxruntime-web's dist files "
                   "(default: the pinned version, fetched once with npm and cached)")
    p.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset (default: 20; 18 or newer)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime / Core ML comparison with PyTorch")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing --onnx and --coreml outputs (never an input); "
                        "--web always wants a new or empty folder")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from export.common import check_apart, human_size
    from export.coreml_export import check_coreml_path
    from export.onnx_export import check_onnx_path

    from ..paths import check_overwrite

    opset, sizes, coreml_path = _checked_flags(args)

    from ..modelfile import load_model

    model = load_model(args.model)  # None: the pretrained model
    # Every output is checked before the first slow export starts.
    if args.onnx:
        check_onnx_path(args.onnx, model)
        check_overwrite([args.onnx], args.overwrite)
    if coreml_path:
        check_coreml_path(coreml_path, model)
        check_overwrite([coreml_path], args.overwrite, folders=True)
    if args.web:
        from export.web import check_site_folder
        check_site_folder(Path(args.web), model)
    check_apart([args.onnx, coreml_path, args.web])

    from tqdm import tqdm
    verify = not args.no_verify
    stages = (2 + verify if args.onnx else 0) + (3 + (verify and platform.system() == "Darwin") if coreml_path else 0)
    bar, on_stage = _stage_bar(stages + (5 + verify if args.web else 0))
    source = model.path if model.path is not None else "pretrained model"
    n = len(model.style_names)
    tqdm.write(f"{source}: {n} style{'s' if n != 1 else ''} ({', '.join(model.style_names)})", file=sys.stdout)
    try:  # each summary is printed as soon as its file is written, even if a later export fails
        if args.onnx:
            from export.onnx_export import export_onnx
            report = export_onnx(model, args.onnx, opset=opset, fp16=args.fp16, verify=verify, on_stage=on_stage)
            tqdm.write(_summary(report, human_size), file=sys.stdout)
        if coreml_path:
            from export.coreml_export import export_coreml
            report = export_coreml(model, coreml_path, precision=args.coreml_precision, sizes=sizes,
                                   verify=verify, on_stage=on_stage)
            tqdm.write(_summary(report, human_size), file=sys.stdout)
        if args.web:
            from export.web import summary, write_site

            from .flags import with_flag_names
            try:
                report = write_site(model, args.web, runtime=args.web_runtime, opset=opset, verify=verify,
                                    on_stage=on_stage)
            except FaststError as e:
                raise with_flag_names(e, {"runtime": "--web-runtime"}) from None
            tqdm.write(summary(report), file=sys.stdout)
    finally:
        bar.close()
    return 0


def _checked_flags(args: argparse.Namespace) -> tuple[int, Any, str | None]:
    """(opset, Core ML sizes, Core ML path) from the flags, or a one-line error before anything is loaded."""
    from export.coreml_export import PRECISIONS, check_sizes, parse_sizes
    from export.onnx_export import DEFAULT_OPSET, check_opset

    if not args.onnx and not args.coreml and not args.web:
        raise FaststError("nothing to export: give --onnx OUT.onnx, --coreml OUT.mlpackage and/or --web DIR")
    if args.web_runtime and not args.web:
        raise FaststError("--web-runtime is for --web")
    if args.coreml_precision not in PRECISIONS:
        raise FaststError(f"unknown Core ML precision '{args.coreml_precision}'; use one of: {', '.join(PRECISIONS)}")
    opset = DEFAULT_OPSET if args.opset is None else args.opset
    check_opset(opset)
    sizes = check_sizes(parse_sizes(args.coreml_sizes)) if args.coreml_sizes else None
    return opset, sizes, str(args.coreml).rstrip("/") if args.coreml else None


def _stage_bar(stages: int) -> tuple[Any, Callable[[str], None]]:
    """A progress bar of `stages` export steps and the callback that names the next one."""
    from tqdm import tqdm
    bar = tqdm(total=stages, desc="export", file=sys.stderr, leave=False,
               bar_format="{desc}: step {n_fmt}/{total_fmt} [{elapsed}]")
    started = [False]

    def on_stage(text: str) -> None:
        if started[0]:
            bar.update(1)
        started[0] = True
        bar.set_description_str(text)

    return bar, on_stage


def _summary(r: dict[str, Any], human_size: Any) -> str:
    """One report as two lines: what was written, then how it was checked."""
    size = human_size(r["bytes"])
    if r["format"] == "onnx":
        head = f"ONNX     {r['path']}  {size}  opset {r['opset']}, {r['precision']}, export {r['export_s']:.1f} s"
        if "checks" not in r:
            return head + "\n         not verified (--no-verify)"
        sizes = ", ".join(dict.fromkeys(c["size"] for c in r["checks"]))
        ref = "PyTorch fp32" if r["precision"] == "fp16" else "PyTorch"
        return (head + f"\n         onnxruntime vs {ref}: max abs error {r['max_error']:.1e} on [0, 1] "
                f"(sizes {sizes}; one-hot and blended style; tolerance {r['tolerance']:.0e})")
    sizes = (f"{r['sizes']} input sizes {r['min_side']}-{r['max_side']} px a side" if r["sizes"] > 1
             else f"input size {r['input_sizes'][0]}")
    head = (f"Core ML  {r['path']}  {size}  ML Program, iOS 16+, {r['precision']}, {sizes}, "
            f"export {r['export_s']:.1f} s")
    check = r.get("prediction_check", "not verified (--no-verify)")
    if "max_error" in r:
        check = f"Core ML vs PyTorch: max abs error {r['max_error']:.3f} on [0, 1] ({check})"
    else:
        check = f"prediction check {check}" if check.startswith("skipped") else check
    return head + f"\n         traced graph vs PyTorch: {r['trace_error']:.1e}; {check}"
