"""`fastst infer [MODEL] INPUT [INPUT ...] -o OUT`: stylize images, folders and videos with a trained
model (a .fst file, an exported .onnx, or the bundled pretrained model). Every check that can fail
runs before anything is written; outputs are written atomically and never replace an input."""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..controls import MAX_STRENGTH
from ..errors import FaststError
from ..paths import check_not_inputs
from .flags import fraction, number_in, positive, tile_size

if TYPE_CHECKING:
    from ..inference.planning import Job
    from ..inference.stylizer import AnyModel, Stylizer

log = logging.getLogger("fastst.infer")

REFINE_MAX_PIXELS = 1024 * 1024  # above this --refine asks for --max-size: Gatys' memory and time grow with the pixels
TEMPORAL_DEFAULT = 0.5  # --temporal's blend strength unless --temporal-strength says otherwise (docs/video.md)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "infer", help="stylize images, folders and videos with a trained model",
        usage="%(prog)s [MODEL] INPUT [INPUT ...] [-o OUT] [options]",
        description="Stylize images, folders (recursive) and videos (.mp4 .mov .avi .mkv .webm) with a trained "
                    "model. MODEL is a .fst model file or an exported .onnx; without it the bundled pretrained "
                    "model is used. Outputs are named <input>_<style>.<ext>; inputs are never overwritten.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="[MODEL] INPUT [INPUT ...]: an optional model file (.fst, .onnx), then images, folders "
                        "or videos")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (one input, one style) or folder (created if missing); "
                        "default: beside each input (folders: a sibling <folder>_stylized)")
    _add_look_flags(p)
    p.add_argument("--max-size", type=positive(16), metavar="N", help="downscale so the long side is at most N px")
    p.add_argument("--refine", type=positive(1), metavar="N",
                   help="images: polish each output with N Gatys evaluations (L-BFGS on Gatys' objective, started "
                        "from the model's output; about 0.09 s each at 256 px and 0.36 s at 512 px on a 2-core CPU "
                        "with hardware bf16); see docs/inference.md for what 50 and 100 buy")
    p.add_argument("--style-image", action="append", default=[], metavar="FILE|FOLDER",
                   help="with --refine: the style's image, or a folder to find it in by the hash the model stores "
                        "(default: the bundled styles)")
    p.add_argument("--tile", type=tile_size, metavar="N",
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
    p.add_argument("--batch-size", type=positive(1, 1024), default=4, metavar="N",
                   help="video frames (or styles of one image) per network call, up to 1024 (default 4)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="auto: bf16 on CPUs with hardware bf16 (AMX/AVX512-BF16), fp16 on CUDA, else fp32")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def _add_look_flags(p: argparse.ArgumentParser) -> None:
    """The flags that choose how the output looks: styles, strength, stroke size, colours, video smoothing."""
    p.add_argument("--style", action="append", default=[], type=style_spec, metavar="NAME|INDEX[=W]",
                   help="style to apply; repeat for one output per style; NAME=W entries together form one "
                        "blend with weights normalised to sum to 1 (default: the first style)")
    p.add_argument("--all-styles", action="store_true", help="write one output per style of the model")
    p.add_argument("--strength", type=number_in(0.0, MAX_STRENGTH), default=None, metavar="S",
                   help="how much of the style, in the network's features: 0 = the photo (the model's identity "
                        "row), 1 = the style as trained, up to 1.5 exaggerates (default: the model's own default; "
                        "a model without an identity row blends pixels instead)")
    p.add_argument("--stroke", type=fraction, default=None, metavar="X",
                   help="brush-stroke size for styles trained at several style sizes: 0 = the smallest, "
                        "1 = the largest (default: the style's own row)")
    p.add_argument("--pixel-blend", type=fraction, default=1.0, metavar="F",
                   help="mix the photo back pixel by pixel: 0 = the photo, 1 = the network's output (default 1)")
    p.add_argument("--temporal", action="store_true",
                   help="videos: blend each frame's output with the previous one along the optical flow where the "
                        "scene is still visible: less flicker, for some extra time a frame (docs/video.md); "
                        "needs OpenCV (pip install 'fastst[video]')")
    p.add_argument("--temporal-strength", type=fraction, default=None, metavar="S",
                   help=f"how much of the previous output --temporal keeps, 0-1 (default {TEMPORAL_DEFAULT})")
    p.add_argument("--preserve-colors", action="store_true", help="keep the content's colours (luminance transfer)")


def style_spec(text: str) -> str:
    """--style NAME, INDEX or NAME=W: the text as given, once the weight W, where there is one, is a finite
    number ≥ 0 (checked as the planner checks it, at parse time)."""
    from ..inference.planning import blend_weight

    if "=" in text:
        try:
            blend_weight(text)
        except FaststError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("style ")) from None
    return text


def _split_paths(paths: list[str]) -> tuple[str | None, list[str]]:
    """(model or None, inputs): the first PATH is the model when it has a model file's suffix."""
    from ..inference.planning import MODEL_SUFFIXES

    if Path(paths[0]).suffix.lower() in MODEL_SUFFIXES:
        model, inputs = paths[0], paths[1:]
    else:
        model, inputs = None, paths
    if not inputs:
        raise FaststError(f"no INPUT given after the model {paths[0]} (give images, folders or videos)")
    return model, inputs


def run(args: argparse.Namespace) -> int:
    from ..inference.planning import OutputExistsError, find_inputs, parse_styles, plan
    from ..inference.stylizer import Stylizer, open_model

    model_path, input_args = _split_paths(args.paths)
    inputs = find_inputs(input_args)
    is_onnx = model_path is not None and Path(model_path).suffix.lower() == ".onnx"
    if args.backend == "torch" and is_onnx:
        raise FaststError("an .onnx model runs on --backend onnx; give the .fst model for --backend torch", model_path)
    if (is_onnx or args.backend == "onnx") and args.tile:
        raise FaststError("--tile needs the torch backend (an ONNX graph normalises each tile on its own)")
    if (is_onnx or args.backend == "onnx") and args.precision not in ("auto", "fp32"):  # before any export
        raise FaststError(f"--precision {args.precision} needs the torch backend; an ONNX model runs in the "
                          "precision it was exported in")
    if args.all_styles and args.style:
        raise FaststError("use either --style or --all-styles, not both")
    _register_backends()
    model = open_model(model_path, device=args.device)
    styles = parse_styles(model, args.style, args.all_styles)
    for _, style in styles:  # strength and stroke out of range: one error before anything is written
        model.mix(style, args.strength, args.stroke)
    try:
        jobs, folders = plan(inputs, styles, args.output, args.overwrite)
    except OutputExistsError as e:
        raise FaststError("output exists; use --overwrite to replace it", e.path) from None
    if args.temporal_strength is not None and not args.temporal:
        raise FaststError("--temporal-strength goes with --temporal")
    if args.temporal and not any(job.kind == "video" for job in jobs):
        raise FaststError("--temporal smooths videos along their motion; no video was given")
    style_images = _refine_style_images(args, model, styles, jobs)
    # the other files this run reads: the model, and the paintings --refine polishes towards
    check_not_inputs([job.out for job in jobs], [getattr(model, "path", None), *style_images.values()])
    model = _pick_backend(args, model, jobs, is_onnx)
    stylizer = Stylizer(model, device=args.device, precision=args.precision)
    _warn_emulated_bf16(stylizer)
    created = sorted({p for d in folders for p in (d, *d.parents) if not p.exists()}, key=lambda p: -len(p.parts))
    for d in folders:
        d.mkdir(parents=True, exist_ok=True)
    try:
        _stylize_images(args, stylizer, [j for j in jobs if j.kind == "image"], style_images)
        _stylize_videos(args, stylizer, [j for j in jobs if j.kind == "video"])
    except BaseException:  # a full disk, Ctrl-C: the folders this run made go again if they stayed empty
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    return 0


def _register_backends() -> None:
    """Plug ONNX Runtime into the library: .onnx models open, and .fst models can run there."""
    from export import runtime

    def say(path: Path) -> None:
        print(f"fastst: exporting the model for ONNX Runtime once (about 30 s; cached as {path})",
              file=sys.stderr, flush=True)

    runtime.register(on_export=say)


def _refine_style_images(args: argparse.Namespace, model: AnyModel, styles: list, jobs: list[Job]) -> dict[Any, Path]:
    """--refine: the image of every style it polishes towards; checks the flags that go with it."""
    if not args.refine:
        if args.style_image:
            raise FaststError("--style-image is for --refine")
        return {}
    if any(job.kind == "video" for job in jobs):
        raise FaststError("--refine is for images: optimising every frame of a video would take hours")
    for place in args.style_image:
        if not Path(place).exists():
            raise FaststError("no such style image or folder (--style-image)", place)
    found: dict[Any, Path] = {}
    for _, style in styles:
        row = _single_row(model, style)
        if row is None:
            raise FaststError("--refine polishes towards one style: give --style NAME, not a blend")
        found[style_key(style)] = _style_image(model, row, args.style_image)
    return found


def style_key(style: Any) -> Any:
    """A job's style as a dict key (a {group: 1} style is a dict)."""
    return tuple(sorted(style.items())) if isinstance(style, dict) else style


def _single_row(model: AnyModel, style: Any) -> int | None:
    """The row a one-style job paints (a style of several sizes: its own row, the one the default stroke
    picks), or None for a blend."""
    if isinstance(style, int):
        return style
    if isinstance(style, dict) and len(style) == 1:
        weights = model.mix(style, 1.0).weights
        return max(range(len(weights)), key=lambda i: weights[i])
    return None


def _style_image(model: AnyModel, index: int, given: list[str]) -> Path:
    """Style `index`'s image, matched by hash or name among the --style-image files and folders (a
    single given file where the model stores no hash: an ONNX export keeps only the names), else among
    the bundled styles, with a warning when --style-image was given."""
    from gatys.refine import find_style_image

    from ..samples import sample_styles

    info = model.styles[index]
    found = find_style_image(model, index, given)
    if found is None and not info.sha256 and len(given) == 1 and Path(given[0]).is_file():
        found = Path(given[0])
    if found is None:
        found = find_style_image(model, index, [sample_styles()])
        if found is not None and given:
            log.warning(f"--style-image: no file given is the image style '{info.name}' was trained on (by hash "
                        f"or name); polishing towards the bundled {found.name}")
    if found is None:
        raise FaststError(f"--refine needs the image of style '{info.name}', which the model does not carry: "
                          f"give it with --style-image (a file or a folder; matched by the hash the model stores)")
    return found


def _pick_backend(args: argparse.Namespace, model: AnyModel, jobs: list[Job], is_onnx: bool) -> AnyModel:
    """Read every input once (a corrupt file fails the run up front), then run a .fst model on ONNX
    Runtime where asked, or with --backend auto where it is faster and equal."""
    from ..hardware import default_precision, resolve_device
    from ..inference.backends import choose_backend, get_backend
    from ..inference.planning import measure_inputs, network_pixels

    sizes = measure_inputs(jobs, args.max_size)
    if args.refine:
        for src, (w, h, _) in sizes.items():
            if w * h > REFINE_MAX_PIXELS:
                raise FaststError(f"--refine optimises the whole {w}x{h} image through the loss network (at 1024x1024, "
                                  "60 evaluations took 2 minutes and 4.5 GiB): add --max-size 1024 or less", src)
    if is_onnx:
        return model
    backend = args.backend
    if backend == "auto":
        pixels = network_pixels(jobs, sizes)
        device = resolve_device(args.device)
        precision = default_precision(device, "inference") if args.precision == "auto" else args.precision
        backend = choose_backend(pixels, device.type, precision, args.tile)
        if backend == "onnx" and not get_backend("onnx").available():
            backend = "torch"
        if backend == "onnx" and not args.quiet:
            print(f"fastst: running on ONNX Runtime ({sum(pixels) / 1e6:.0f} megapixels of input: 1.5-1.7x faster "
                  f"than PyTorch on CPUs; --backend torch to opt out)", file=sys.stderr, flush=True)
    return get_backend("onnx").convert(model, args.device) if backend == "onnx" else model


def _warn_emulated_bf16(stylizer: Stylizer) -> None:
    from ..hardware import cpu_has_fast_bf16

    if stylizer.precision == "bf16" and stylizer.device.type == "cpu" and not cpu_has_fast_bf16():
        log.warning("this CPU has no hardware bf16: --precision bf16 is emulated and much slower than fp32")


def _stylize_images(args: argparse.Namespace, stylizer: Stylizer, jobs: list[Job],
                    style_images: dict[Any, Path]) -> None:
    """Every image job, each input loaded once and run with up to --batch-size styles at a time."""
    import torch

    from ..images import load_image, resize_long_side, save_image
    from ..progress import progress_bar

    progress = not args.quiet
    one = progress and len(jobs) == 1  # a single image shows its tiles' progress instead
    options = {"pixel_blend": args.pixel_blend, "preserve_colors": args.preserve_colors}
    by_src: dict[Path, list[Job]] = {}
    for job in jobs:
        by_src.setdefault(job.src, []).append(job)
    bar = progress_bar(len(jobs), "images", enabled=progress and len(jobs) > 1)
    try:
        for src, group in by_src.items():
            x = load_image(src)
            if args.max_size and max(x.shape[-2:]) > args.max_size:
                x = resize_long_side(x, args.max_size)
            for i in range(0, len(group), args.batch_size):
                chunk = group[i:i + args.batch_size]
                controls = [stylizer.controls(j.style, args.strength, args.stroke) for j in chunk]
                weights = torch.cat([w for w, _ in controls])
                blend = min(b for _, b in controls)  # a model without an identity row: its strength's pixel blend
                done = {**options, "pixel_blend": options["pixel_blend"] * blend}
                y = stylizer.batch(x.unsqueeze(0).expand(len(chunk), -1, -1, -1), weights, tile=args.tile,
                                   stats=args.tile_stats, progress=one, **({} if args.refine else done))
                if args.refine:
                    y = _refined(args, x, y, chunk, style_images, done, one)
                for j, img in zip(chunk, y):
                    save_image(img, j.out)
                    print(j.out, flush=True)
                    bar.update(1)
    finally:
        bar.close()


def _refined(args: argparse.Namespace, x: Any, y: Any, chunk: list[Job], style_images: dict[Any, Path],
             options: dict[str, Any], progress: bool) -> Any:
    """Polish the full-strength outputs with --refine evaluations, then blend and keep colours as asked."""
    import torch

    from gatys.refine import refine

    from ..inference.stylizer import finish

    return torch.stack([finish(x, refine(x, img, style_images[style_key(j.style)], args.refine, args.device, progress), **options)
                        for j, img in zip(chunk, y)])


def _temporal(args: argparse.Namespace) -> float:
    """The blend strength of --temporal (0: off)."""
    if not args.temporal:
        return 0.0
    return TEMPORAL_DEFAULT if args.temporal_strength is None else args.temporal_strength


def _stylize_videos(args: argparse.Namespace, stylizer: Stylizer, jobs: list[Job]) -> None:
    from ..inference.video import stylize_video

    progress = not args.quiet
    for job in jobs:
        weights, blend = stylizer.controls(job.style, args.strength, args.stroke)
        result = stylize_video(stylizer, job.src, job.out, weights, pixel_blend=args.pixel_blend * blend,
                               preserve_colors=args.preserve_colors, max_size=args.max_size,
                               batch_size=args.batch_size, tile=args.tile, progress=progress,
                               temporal=_temporal(args))
        print(job.out, flush=True)
        if progress:
            print(f"{job.src.name}: {result.frames} frames at {result.frames_per_second:.2f} frames/s, "
                  f"audio {result.audio}", file=sys.stderr)
