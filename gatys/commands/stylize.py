"""`gatys stylize CONTENT STYLE [STYLE ...] -o OUT.png`: one image by per-image optimisation."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastst.commands.flags import with_flag_names
from fastst.errors import FaststError
from fastst.paths import check_not_inputs, check_writable_folder

from .. import defaults as go

# the settings the library's errors quote ('lr'), by their flags
FLAGS = {"size": "--size", "style_scale": "--style-scale", "lr": "--lr", "seed": "--seed"}


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options shared by stylize and sweep (loss, optimisation and device settings, --overwrite)."""
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (images, logs, sheets, plots); never an input")
    p.add_argument("--tv-weight", type=float, default=None,
                   help=f"total-variation weight (default: {go.DEFAULT_TV_WEIGHT:g} for vgg16-caffe; "
                        f"{go.NORMALIZED_TV_WEIGHT:g} with --normalize-gradients)")
    p.add_argument("--normalize-gradients", action="store_true",
                   help="neural-style's -normalize_gradients: divide each loss layer's gradient by its L1 norm, "
                        "then weight it: every layer counts by its weight alone, on any backbone (default weights "
                        f"then {go.NORMALIZED_CONTENT_WEIGHT:g}, {go.NORMALIZED_STYLE_WEIGHT:g}, "
                        f"{go.NORMALIZED_TV_WEIGHT:g}; L-BFGS takes fixed steps, as neural-style's)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate, pixels in [0, 1] (default: per optimizer: "
                        + ", ".join(f"{k} {lr:g}" if lr else f"{k} auto" for k, lr in go.OPTIMIZER_LRS.items())
                        + "; sgd auto: the first step moves the mean pixel by " + f"{go.SGD_AUTO_STEP:g}; "
                        + f"lbfgs {go.NORMALIZED_LBFGS_LR:g} with --normalize-gradients)")
    p.add_argument("--lbfgs-history", type=int, default=go.LBFGS_HISTORY, metavar="N",
                   help="steps L-BFGS remembers (neural-style's -lbfgs_num_correction); each holds two image-sized "
                        "vectors (6 MB at 512 px), so fewer save memory on large images (default: %(default)s)")
    p.add_argument("--iterations", type=int, default=go.DEFAULT_ITERATIONS,
                   help="loss evaluations (forward + backward passes), for every optimizer (default: %(default)s)")
    p.add_argument("--init", default="content", metavar="{content,noise,style,IMAGE}",
                   help="starting image: the content, noise, the style, or an image file resized to the output "
                        "(e.g. an earlier result, or `fastst infer`'s output to refine) (default: %(default)s)")
    p.add_argument("--size", type=int, default=go.DEFAULT_SIZE, help="long side of the output in px (default: %(default)s)")
    p.add_argument("--style-scale", type=float, default=1.0,
                   help="style image long side as a fraction of the output's (default: %(default)s)")
    p.add_argument("--scales", type=int, default=1,
                   help="coarse-to-fine pyramid levels, halving the size per level (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed for --init noise (default: %(default)s)")
    p.add_argument("--device", default="auto", metavar="{auto,cpu,cuda,mps}", help="(default: %(default)s)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast for the loss network; image and optimizer state stay fp32 "
                        "(default: on for CPUs with hardware bf16, AVX512-BF16 or AMX; off elsewhere)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("stylize", help="stylize one image by optimising its pixels (Gatys et al.)",
                       description="Stylize CONTENT with one or more STYLE images by per-image optimisation.")
    p.add_argument("content", metavar="CONTENT", help="content image")
    p.add_argument("styles", metavar="STYLE", nargs="+", help="style image(s); several are blended")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output image (.png, .jpg, .webp, .bmp)")
    p.add_argument("--backbone", default=go.DEFAULT_BACKBONE,
                   help="vgg16-caffe, vgg16, vgg19, resnet50 or a weights file (default: %(default)s)")
    p.add_argument("--content-layers", default=None, metavar="L1,L2",
                   help="content layers (default: relu4_2 for VGG, layer3 for ResNet50)")
    p.add_argument("--style-layers", default=None, metavar="L1,L2",
                   help="style layers (default: relu1_1,relu2_1,relu3_1,relu4_1,relu5_1 for VGG; "
                        "conv1,layer1,layer2,layer3,layer4 for ResNet50)")
    p.add_argument("--content-weight", type=float, default=None,
                   help=f"alpha (default: {go.DEFAULT_CONTENT_WEIGHT:g}; {go.NORMALIZED_CONTENT_WEIGHT:g} with "
                        "--normalize-gradients)")
    p.add_argument("--style-weight", type=float, default=None,
                   help=f"beta (default: {go.DEFAULT_STYLE_WEIGHT:g} for vgg16-caffe; with another backbone and "
                        "no weight given, alpha, beta and the tv weight are matched to it, see "
                        f"gatys.optimize.matched_weights; {go.NORMALIZED_STYLE_WEIGHT:g} with --normalize-gradients)")
    p.add_argument("--style-blend", default=None, metavar="W1,W2,...",
                   help="weights of the style images (default: equal)")
    p.add_argument("--optimizer", default="lbfgs", metavar="{" + ",".join(go.OPTIMIZER_LRS) + "}",
                   help="(default: %(default)s)")
    p.add_argument("--original-colors", action="store_true",
                   help="transfer luminance only and keep the content's colours")
    p.add_argument("--pooling", default="max", metavar="{max,avg}",
                   help="the VGG loss network's pooling; avg: Gatys et al.'s choice for synthesis (default: %(default)s)")
    p.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="also save the image every N evaluations as OUT_NNNN.EXT, and OUT_progress.jpg, a sheet "
                        "of them with their losses (default 0: no snapshots)")
    p.add_argument("--log", default=None, metavar="RUN.csv",
                   help="per-evaluation CSV log (default: OUT with the suffix .csv)")
    add_common_options(p)
    p.set_defaults(func=run)
    return p


def parse_list(text: str | None, what: str) -> list[str] | None:
    """'a,b, c' -> ['a', 'b', 'c']; None stays None; an empty list is a user error."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise FaststError(f"{what} is empty")
    return items


def parse_floats(text: str | None, what: str) -> list[float] | None:
    """'1,0.5' -> [1.0, 0.5]; a non-number is a one-line user error."""
    items = parse_list(text, what)
    if items is None:
        return None
    try:
        return [float(t) for t in items]
    except ValueError:
        raise FaststError(f"{what} must be comma-separated numbers, got '{text}'") from None


def check_output(output: str | os.PathLike, inputs: list[str]) -> Path:
    """The output path must be a supported image type and must not be one of the inputs."""
    out = Path(output)
    if out.is_dir():
        raise FaststError("is a folder; give an image file to write (.png, .jpg, .webp or .bmp)", out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"):
        raise FaststError(f"unsupported output format '{out.suffix}' (use .png, .jpg, .webp or .bmp)", out)
    check_not_inputs([out], inputs)
    return out


def check_outputs(outputs: list[Path], inputs: list[str], overwrite: bool) -> None:
    """Before any work: no output is an input (through links), none exists unless `overwrite`, and
    every output folder takes files."""
    check_not_inputs(outputs, inputs)
    for out in outputs:
        if out.exists() and not overwrite:
            raise FaststError("exists; use --overwrite to replace it", out)
        if out.is_dir():
            raise FaststError("is a folder, not a file", out)
    for folder in dict.fromkeys(out.parent for out in outputs):
        check_writable_folder(folder)


def snapshot_path(out: Path, evaluation: int) -> Path:
    """Where --save-every puts the image after `evaluation` evaluations: OUT_0100.png beside OUT.png."""
    return out.with_name(f"{out.stem}_{evaluation:04d}{out.suffix}")


def progress_path(out: Path) -> Path:
    """Where --save-every's progress sheet goes: beside OUT, named OUT_progress.jpg."""
    return out.with_name(f"{out.stem}_progress.jpg")


def write_progress_sheet(snapshots: list[tuple[int, Path]], rows: list[dict[str, float]], path: Path) -> Path:
    """A contact sheet of the saved snapshots, each labelled with its evaluation and total loss."""
    from fastst.images import load_image
    from fastst.sheets import contact_sheet

    labels = [f"evaluation {k}\nloss {rows[k - 1]['total']:.4g}" for k, _ in snapshots]
    return contact_sheet([load_image(p) for _, p in snapshots], labels, path, tile=192,
                         cols=min(len(snapshots), 5))


def loss_weights(args: argparse.Namespace, style: str) -> tuple[float, float, float]:
    """α, β, tv from the flags; the vgg16-caffe defaults, or their match for another backbone when none is given."""
    given = (args.content_weight, args.style_weight, args.tv_weight)
    defaults = dict(zip(("content_weight", "style_weight", "tv_weight"), go.default_weights(args.normalize_gradients)))
    # normalised gradients do not depend on the backbone's feature scale: nothing to match
    if all(g is None for g in given) and args.backbone != go.DEFAULT_BACKBONE and not args.normalize_gradients:
        from ..optimize import matched_weights
        defaults = matched_weights(args.backbone, args.content, style,
                                   parse_list(args.content_layers, "--content-layers"),
                                   parse_list(args.style_layers, "--style-layers"), device=args.device)
        print(f"gatys: weights matched to {args.backbone}: --content-weight {defaults['content_weight']:.3g} "
              f"--style-weight {defaults['style_weight']:.3g} --tv-weight {defaults['tv_weight']:.3g}",
              file=sys.stderr)
    a, b, t = (d if g is None else g for g, d in zip(given, defaults.values()))
    return a, b, t


def check_common_flags(args: argparse.Namespace, weights: list[float], n_styles: int,
                       style_blend: list[float] | None) -> None:
    """The options stylize and sweep share in their ranges, before any file is read or written: the
    library's own checks, its errors naming the flags."""
    from ..inputs import check_settings

    try:
        check_settings(args.size, args.iterations, args.scales, args.style_scale, args.init, weights, n_styles,
                       style_blend, lr=args.lr, seed=args.seed)
    except FaststError as e:
        raise with_flag_names(e, FLAGS) from None


def check_flags(args: argparse.Namespace) -> None:
    """Every setting in its range, before any file is read or written (weights as given; None takes a
    default, in range)."""
    given = [w for w in (args.content_weight, args.style_weight, args.tv_weight) if w is not None]
    check_common_flags(args, given, len(args.styles), parse_floats(args.style_blend, "--style-blend"))
    if args.save_every < 0:
        raise FaststError(f"--save-every must be 0 (no snapshots) or a positive number of evaluations, "
                          f"got {args.save_every}")


def run(args: argparse.Namespace) -> int:
    check_flags(args)
    inputs = [args.content, *args.styles] + ([args.init] if Path(args.init).is_file() else [])
    out = check_output(args.output, inputs)
    log = Path(args.log) if args.log else out.with_suffix(".csv")
    if log.resolve() == out.resolve():
        raise FaststError("the log and the output image are the same file", log)
    snapshots: list[tuple[int, Path]] = []
    outputs = [out, log]
    if args.save_every:
        outputs += [check_output(snapshot_path(out, k), inputs)
                    for k in range(args.save_every, args.iterations + 1, args.save_every)]
        outputs.append(progress_path(out))
    check_outputs(outputs, inputs, args.overwrite)
    alpha, beta, tv = loss_weights(args, args.styles[0])
    from fastst.images import save_image

    from ..optimize import write_log

    def save_snapshot(evaluation: int, image) -> None:  # noqa: ANN001 - a (3, H, W) tensor
        snapshots.append((evaluation, save_image(image, snapshot_path(out, evaluation))))

    try:
        result = _stylize(args, (alpha, beta, tv), save_snapshot)
    except FaststError as e:
        raise with_flag_names(e, FLAGS) from None
    written: list[Path] = []
    try:  # the image, its log and sheet as one: a failed write (a full disk) leaves none of them
        written.append(save_image(result.image, out))
        written.append(write_log(result.rows, log))
        if snapshots:
            written.append(write_progress_sheet(snapshots, result.rows, progress_path(out)))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    final = result.final
    print(f"{out}: {result.evaluations} evaluations in {result.seconds:.1f} s "
          f"({result.passes_per_second:.2f} passes/s) on {result.settings['device']}"
          f"{' bf16' if result.settings['bf16'] else ''}; final loss {final['total']:.4g} "
          f"(content {final['content']:.4g}, style {final['style']:.4g}, tv {final['tv']:.4g}); log {log}")
    return 0


def _stylize(args: argparse.Namespace, weights: tuple[float, float, float],
             save_snapshot: Callable[[int, Any], None]) -> Any:
    """`gatys.optimize.stylize` with the command line's settings and the loss weights α, β, tv."""
    from ..optimize import stylize

    return stylize(
        args.content, args.styles, backbone=args.backbone,
        content_layers=parse_list(args.content_layers, "--content-layers"),
        style_layers=parse_list(args.style_layers, "--style-layers"),
        content_weight=weights[0], style_weight=weights[1], tv_weight=weights[2],
        style_blend=parse_floats(args.style_blend, "--style-blend"), optimizer=args.optimizer, lr=args.lr,
        iterations=args.iterations, init=args.init, size=args.size, style_scale=args.style_scale,
        original_colors=args.original_colors, scales=args.scales, seed=args.seed, device=args.device,
        bf16=args.bf16, progress=args.progress, pooling=args.pooling, normalize_gradients=args.normalize_gradients,
        lbfgs_history=args.lbfgs_history,
        snapshot_every=args.save_every, snapshot=save_snapshot if args.save_every else None)
