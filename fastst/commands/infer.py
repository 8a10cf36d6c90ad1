"""`fastst infer [MODEL] INPUT [INPUT ...] -o OUT`: stylize images, folders and videos with a trained
model (a .fst file, an exported .onnx, or the bundled pretrained model). Every check that can fail
runs before anything is written; outputs are written atomically and never replace an input."""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import FaststError

log = logging.getLogger("fastst.infer")

MODEL_SUFFIXES = (".fst", ".onnx", ".ckpt", ".pt", ".pth")
IMAGE_OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {v}")
    return v


REFINE_MAX_PIXELS = 1024 * 1024  # above this --refine asks for --max-size: Gatys' memory and time grow with the pixels


def _positive(minimum: int):  # noqa: ANN202
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {v}")
        return v
    return parse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "infer", help="stylize images, folders and videos with a trained model",
        usage="%(prog)s [MODEL] INPUT [INPUT ...] [-o OUT] [options]",
        description="Stylize images, folders (recursive) and videos (.mp4 .mov .avi .mkv .webm) with a trained "
                    "model. MODEL is a .fst model file or an exported .onnx; without it the bundled pretrained "
                    "model is used. Outputs are named <input>_<style>.<ext>; inputs are never overwritten.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="[MODEL] INPUT [INPUT ...]: an optional model file (.fst, .onnx), then images, folders or videos")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (one input, one style) or folder (created if missing); "
                        "default: beside each input (folders: a sibling <folder>_stylized)")
    p.add_argument("--style", action="append", default=[], metavar="NAME|INDEX[=W]",
                   help="style to apply; repeat for one output per style; NAME=W entries together form one "
                        "blend with weights normalised to sum to 1 (default: the first style)")
    p.add_argument("--all-styles", action="store_true", help="write one output per style of the model")
    p.add_argument("--strength", type=_fraction, default=1.0, metavar="F",
                   help="blend with the content: 0 = content, 1 = fully stylized (default 1)")
    p.add_argument("--preserve-colors", action="store_true", help="keep the content's colours (luminance transfer)")
    p.add_argument("--max-size", type=_positive(16), metavar="N", help="downscale so the long side is at most N px")
    p.add_argument("--refine", type=_positive(1), metavar="N",
                   help="images: polish each output with N Gatys evaluations (L-BFGS on Gatys' objective, started "
                        "from the model's output; about 0.09 s each at 256 px and 0.36 s at 512 px on a 2-core CPU "
                        "with hardware bf16); see the README for what 50 and 100 buy")
    p.add_argument("--style-image", action="append", default=[], metavar="FILE|FOLDER",
                   help="with --refine: the style's image, or a folder to find it in by the hash the model stores "
                        "(default: the bundled styles)")
    p.add_argument("--tile", type=_positive(0), metavar="N",
                   help="stylize in N px tiles (each computed with 56 px of context around it) that share "
                        "whole-image statistics: bounded memory, no seams; default: 512 px tiles above "
                        "4 megapixels (a 16 MP image then needs < 2 GiB); 0: never tile")
    p.add_argument("--tile-stats", choices=("auto", "exact"), default="auto",
                   help="tile statistics of images over 0.6 megapixels: 'auto' measures them on a 0.6 MP "
                        "copy (fast, close), 'exact' on the full image layer by layer (equal to untiled, ~8x slower)")
    p.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="torch or onnxruntime. 'onnx' with a .fst model exports it once (cached) and runs "
                        "it with onnxruntime: 1.5-1.7x faster on CPUs at 512 px and up. auto (default): "
                        "onnxruntime for .onnx models, and for .fst models in fp32 on a CPU when the run "
                        "has over 50 megapixels of input (video, big folders) and no image needs tiling")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    p.add_argument("--batch-size", type=_positive(1), default=4, metavar="N",
                   help="video frames (or styles of one image) per network call (default 4)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="auto: bf16 on CPUs with hardware bf16 (AMX/AVX512-BF16), fp16 on CUDA, else fp32")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


@dataclass
class Job:
    """One output to write: which input, which style, where."""

    src: Path
    kind: str  # "image" or "video"
    label: str
    style: int | dict[str, float]
    out: Path


def _split_paths(paths: list[str]) -> tuple[str | None, list[str]]:
    if Path(paths[0]).suffix.lower() in MODEL_SUFFIXES:
        model, inputs = paths[0], paths[1:]
    else:
        model, inputs = None, paths
    if not inputs:
        raise FaststError(f"no INPUT given after the model {paths[0]} (give images, folders or videos)")
    return model, inputs


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", label).strip("-") or "style"


def parse_styles(model: object, specs: list[str], all_styles: bool) -> list[tuple[str, int | dict[str, float]]]:
    """[(label, style)] from --style / --all-styles: each plain NAME|INDEX is one output, all NAME=W
    entries together one blend (weights normalised); FaststError lists the styles on a bad name."""
    names: list[str] = model.style_names  # type: ignore[attr-defined]
    if all_styles:
        if specs:
            raise FaststError("use either --style or --all-styles, not both")
        return [(_safe(n), i) for i, n in enumerate(names)]
    if not specs:
        return [(_safe(names[0]), 0)]
    jobs: list[tuple[str, int | dict[str, float]]] = []
    blend: dict[str, float] = {}
    for spec in specs:
        if "=" in spec:
            name, _, weight = spec.rpartition("=")
            try:
                w = float(weight)
            except ValueError:
                raise FaststError(f"--style {spec}: weight '{weight}' is not a number") from None
            if not w >= 0 or w == float("inf"):
                raise FaststError(f"--style {spec}: weights must be non-negative")
            i = model.style_index(name)  # type: ignore[attr-defined]
            blend[names[i]] = blend.get(names[i], 0.0) + w
        else:
            i = model.style_index(spec)  # type: ignore[attr-defined]
            if (_safe(names[i]), i) not in jobs:
                jobs.append((_safe(names[i]), i))
    if blend:
        total = sum(blend.values())
        if total <= 0:
            raise FaststError("blend weights are all zero; give at least one positive --style NAME=W")
        blend = {n: w / total for n, w in blend.items()}
        label = "+".join(f"{_safe(n)}{round(100 * w)}" for n, w in blend.items() if w > 0)
        jobs.append((label, blend))
    return jobs


def _expand(inputs: list[str]) -> list[tuple[Path, str, Path | None]]:
    """[(file, kind, folder it came from or None)], in order; FaststError for anything unusable."""
    from ..images import IMAGE_EXTENSIONS
    from ..video import VIDEO_EXTENSIONS

    found: list[tuple[Path, str, Path | None]] = []
    for text in inputs:
        path = Path(text)
        if not path.exists():
            raise FaststError("no such file or folder", path)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                raise FaststError("no images or videos in this folder", path)
            found += [(f, "video" if f.suffix.lower() in VIDEO_EXTENSIONS else "image", path) for f in files]
        else:
            suffix = path.suffix.lower()
            if suffix in VIDEO_EXTENSIONS:
                found.append((path, "video", None))
            elif suffix in IMAGE_EXTENSIONS:
                found.append((path, "image", None))
            elif suffix in MODEL_SUFFIXES:
                raise FaststError("a model file can only be the first argument", path)
            else:
                raise FaststError(f"unsupported input type '{suffix or path.name}' (images: "
                                  f"{' '.join(IMAGE_EXTENSIONS)}; videos: {' '.join(VIDEO_EXTENSIONS)})", path)
    return found


def _default_suffix(src: Path, kind: str) -> str:
    from ..video import output_suffix

    if kind == "video":
        return output_suffix(src)
    return src.suffix.lower() if src.suffix.lower() in IMAGE_OUTPUT_SUFFIXES else ".png"


def plan(inputs: list[tuple[Path, str, Path | None]], styles: list[tuple[str, int | dict[str, float]]],
         output: str | None, overwrite: bool) -> tuple[list[Job], list[Path]]:
    """Decide every output path and check them all: (jobs, folders to create)."""
    from ..video import OUTPUT_FORMATS

    several = len(inputs) * len(styles) > 1 or any(folder is not None for _, _, folder in inputs)
    out = Path(output) if output else None
    single_file = out is not None and not several and not out.is_dir() and out.suffix != ""
    if out is not None and several and not out.is_dir() and out.suffix.lower() in IMAGE_OUTPUT_SUFFIXES + tuple(OUTPUT_FORMATS) + (".avi", ".webm"):
        raise FaststError(f"there are {len(inputs) * len(styles)} outputs, so OUT must be a folder, not a file name", out)
    if out is not None and out.exists() and not out.is_dir() and several:
        raise FaststError("OUT must be a folder when there are several outputs", out)
    jobs: list[Job] = []
    folders: set[Path] = set()
    for src, kind, folder in inputs:
        for label, style in styles:
            name = f"{src.stem}_{label}{_default_suffix(src, kind)}"
            if single_file:
                assert out is not None
                target = out
                ok = (tuple(OUTPUT_FORMATS) if kind == "video" else IMAGE_OUTPUT_SUFFIXES)
                if target.suffix.lower() not in ok:
                    raise FaststError(f"a {kind} output must end in {', '.join(ok)}", target)
                if not target.parent.is_dir():
                    raise FaststError("output folder does not exist", target.parent)
            else:
                if out is not None:
                    base = out
                elif folder is not None:
                    base = folder.parent / f"{folder.name}_stylized"
                else:
                    base = src.parent
                rel = src.parent.relative_to(folder) if folder is not None else Path()
                target = base / rel / name
                folders.add(target.parent)
            jobs.append(Job(src=src, kind=kind, label=label, style=style, out=target))
    sources = {os.path.realpath(src) for src, _, _ in inputs}
    seen: dict[str, Job] = {}
    for job in jobs:
        real = os.path.realpath(job.out)
        if real in sources:
            raise FaststError("output path is an input; refusing to overwrite it", job.out)
        if real in seen:
            raise FaststError(f"two outputs would have the same name ({seen[real].src} and {job.src})", job.out)
        seen[real] = job
        if job.out.exists() and not overwrite:
            raise FaststError("output exists; use --overwrite to replace it", job.out)
        if job.out.is_dir():
            raise FaststError("output path is a folder", job.out)
    for d in folders:
        p = d
        while not p.exists():
            p = p.parent
        if not p.is_dir():
            raise FaststError("cannot create the output folder: a file is in the way", p)
    return jobs, sorted(folders)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..hardware import cpu_has_fast_bf16
    from ..images import MIN_SIDE, load_image, load_pil, resize_long_side, save_image
    from ..hardware import resolve_device
    from ..stylize import Stylizer, _progress, choose_backend, default_precision, finish, onnx_for, open_model
    from ..video import output_size, probe_video, stylize_video

    model_path, input_args = _split_paths(args.paths)
    inputs = _expand(input_args)
    is_onnx = model_path is not None and Path(model_path).suffix.lower() == ".onnx"
    if args.backend == "torch" and is_onnx:
        raise FaststError("an .onnx model runs on --backend onnx; give the .fst model for --backend torch", model_path)
    if (is_onnx or args.backend == "onnx") and args.tile:
        raise FaststError("--tile needs the torch backend (an ONNX graph normalises each tile on its own)")
    model = open_model(model_path, device=args.device)
    styles = parse_styles(model, args.style, args.all_styles)
    jobs, folders = plan(inputs, styles, args.output, args.overwrite)
    style_images: dict[int, Path] = {}  # --refine: the image of every style it polishes towards
    if args.refine:
        from ..refine import refine, style_image_for

        if any(job.kind == "video" for job in jobs):
            raise FaststError("--refine is for images: optimising every frame of a video would take hours")
        for _, style in styles:
            if not isinstance(style, int):
                raise FaststError("--refine polishes towards one style: give --style NAME, not a blend")
            style_images[style] = style_image_for(model, style, args.style_image)
    elif args.style_image:
        raise FaststError("--style-image is for --refine")

    # Read every input once before writing anything: a corrupt file fails the run up front.
    pixels = []  # per network input, after --max-size
    for src in dict.fromkeys(job.src for job in jobs if job.kind == "image"):
        w, h = load_pil(src).size
        if args.max_size and max(w, h) > args.max_size:
            w, h = round(w * args.max_size / max(w, h)), round(h * args.max_size / max(w, h))
        if min(w, h) < MIN_SIDE:
            raise FaststError(f"image too small to stylize ({w}x{h}{' after --max-size' if args.max_size else ''}; "
                              f"need at least {MIN_SIDE} px a side)", src)
        if args.refine and w * h > REFINE_MAX_PIXELS:
            raise FaststError(f"--refine optimises the whole {w}x{h} image through the loss network (at 1024x1024, 60 "
                              f"evaluations took 2 minutes and 4.5 GiB): add --max-size 1024 or less", src)
        pixels += [w * h] * sum(1 for j in jobs if j.src == src)
    for src in dict.fromkeys(job.src for job in jobs if job.kind == "video"):
        info = probe_video(src)
        w, h = output_size(info.width, info.height, args.max_size)
        pixels += [w * h] * info.frames * sum(1 for j in jobs if j.src == src)
    backend = args.backend
    if backend == "auto" and not is_onnx:
        device = resolve_device(args.device)
        precision = default_precision(device) if args.precision == "auto" else args.precision
        backend = choose_backend(pixels, device.type, precision, args.tile)
        if backend == "onnx" and not args.quiet:
            print(f"fastst: running on ONNX Runtime ({sum(pixels) / 1e6:.0f} megapixels of input: 1.5-1.7x faster "
                  f"than PyTorch on CPUs; --backend torch to opt out)", file=sys.stderr, flush=True)
    if backend == "onnx" and not is_onnx:
        model = onnx_for(model, device=args.device)

    stylizer = Stylizer(model, device=args.device, precision=args.precision)
    if stylizer.precision == "bf16" and stylizer.device.type == "cpu" and not cpu_has_fast_bf16():
        log.warning("this CPU has no hardware bf16: --precision bf16 is emulated and much slower than fp32")
    for d in folders:
        d.mkdir(parents=True, exist_ok=True)
    progress = not args.quiet
    tile = args.tile  # None: automatic; 0: never
    options = dict(strength=args.strength, preserve_colors=args.preserve_colors)

    image_jobs = [j for j in jobs if j.kind == "image"]
    bar = _progress(len(image_jobs), "images", enabled=progress and len(image_jobs) > 1)
    try:
        by_src: dict[Path, list[Job]] = {}
        for job in image_jobs:
            by_src.setdefault(job.src, []).append(job)
        for src, group in by_src.items():
            x = load_image(src)
            if args.max_size and max(x.shape[-2:]) > args.max_size:
                x = resize_long_side(x, args.max_size)
            for i in range(0, len(group), args.batch_size):
                chunk = group[i:i + args.batch_size]
                weights = torch.cat([stylizer.style_weights(j.style) for j in chunk])
                y = stylizer.batch(x.unsqueeze(0).expand(len(chunk), -1, -1, -1), weights, tile=tile,
                                   stats=args.tile_stats, progress=progress and len(image_jobs) == 1,
                                   **({} if args.refine else options))
                if args.refine:  # polish the full-strength output, then blend and keep colours as asked
                    y = torch.stack([finish(x, refine(x, img, style_images[j.style], args.refine, args.device,
                                                      progress and len(image_jobs) == 1), **options)
                                     for j, img in zip(chunk, y)])
                for j, img in zip(chunk, y):
                    save_image(img, j.out)
                    print(j.out, flush=True)
                    bar.update(1)
    finally:
        bar.close()
    for job in (j for j in jobs if j.kind == "video"):
        result = stylize_video(stylizer, job.src, job.out, stylizer.style_weights(job.style),
                               max_size=args.max_size, batch_size=args.batch_size, tile=tile,
                               progress=progress, **options)
        print(job.out, flush=True)
        if progress:
            print(f"{job.src.name}: {result.frames} frames at {result.frames_per_second:.2f} frames/s, "
                  f"audio {result.audio}", file=sys.stderr)
    return 0
