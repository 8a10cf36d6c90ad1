"""`gatys sweep CONTENT STYLE [STYLE ...] --out DIR`: a grid over styles, optimizers, learning rates, weights,
layers, backbones and pooling."""
from __future__ import annotations

import argparse
import time

from fastst.commands.flags import with_flag_names
from fastst.errors import FaststError

from .. import defaults as go
from .stylize import FLAGS, add_common_options, check_common_flags


def _split(values: list[str] | None) -> list[str]:
    """Values given as separate arguments and/or comma-separated."""
    return [v.strip() for arg in values or [] for v in arg.split(",") if v.strip()]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("sweep", help="grid of Gatys runs over styles, optimizers, learning rates, weights, layers, "
                                     "backbones and pooling",
                       description="Run every combination of the given settings on CONTENT and each STYLE with the "
                                   "same evaluation budget; write per-run CSVs, summary.csv (scored by one fixed "
                                   "vgg16-caffe objective), loss-curve plots and a contact sheet into --out.")
    p.add_argument("content", metavar="CONTENT", help="content image")
    p.add_argument("style", metavar="STYLE", nargs="+", help="style image(s); several are an axis of the grid, "
                                                             "not blended")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--optimizers", nargs="+", default=["lbfgs"], metavar="NAME",
                   help="optimizers, e.g. lbfgs adam or lbfgs,adam (from: " + ", ".join(go.OPTIMIZER_LRS) + ")")
    p.add_argument("--lrs", nargs="+", default=None, metavar="[NAME=]R1,R2",
                   help="learning rates, an axis of the grid: per optimizer, e.g. adam=0.01,0.05 rmsprop=1e-3,5e-3, "
                        "and/or a plain list for every optimizer not named, e.g. 0.01,0.1 (default: each "
                        "optimizer's own, or --lr)")
    p.add_argument("--weight-ratios", nargs="+", default=None, metavar="ALPHA:BETA",
                   help=f"content:style weight pairs, e.g. 1:1e3 1:1e4 (default: "
                        f"{go.DEFAULT_CONTENT_WEIGHT:g}:{go.DEFAULT_STYLE_WEIGHT:g}; with --normalize-gradients "
                        f"{go.NORMALIZED_CONTENT_WEIGHT:g}:{go.NORMALIZED_STYLE_WEIGHT:g})")
    p.add_argument("--content-layer-sets", nargs="+", default=None, metavar="L1,L2",
                   help="content layer sets, one argument each, layers comma-separated (default: the backbone's)")
    p.add_argument("--style-layer-sets", nargs="+", default=None, metavar="L1,L2",
                   help="style layer sets, one argument each, layers comma-separated (default: the backbone's)")
    p.add_argument("--backbones", nargs="+", default=[go.DEFAULT_BACKBONE], metavar="NAME",
                   help="vgg16-caffe, vgg16, vgg19, resnet50 or weights files (default: %(default)s)")
    p.add_argument("--poolings", nargs="+", default=["max"], metavar="{max,avg}",
                   help="VGG loss-network pooling, e.g. max avg (Gatys et al. preferred avg for synthesis; "
                        "default: %(default)s)")
    p.add_argument("--match-weights", action="store_true",
                   help="rescale beta and the tv weight per backbone (and layer set) so one ALPHA:BETA pair means "
                        "the same balance as on vgg16-caffe")
    p.add_argument("--resume", action="store_true",
                   help="keep the runs an interrupted sweep into --out finished (same settings), run the rest")
    add_common_options(p)
    p.set_defaults(func=run, size=256, iterations=200)
    return p


def _layer_sets(values: list[str] | None, what: str) -> list[list[str] | None]:
    if not values:
        return [None]
    sets = [[v.strip() for v in arg.split(",") if v.strip()] for arg in values]
    if any(not s for s in sets):
        raise FaststError(f"{what}: empty layer set")
    return sets


def run(args: argparse.Namespace) -> int:
    from .. import sweep as gs
    ratios = [gs.parse_ratio(r) for r in _split(args.weight_ratios)] or \
        [go.default_weights(args.normalize_gradients)[:2]]
    weights = [w for pair in ratios for w in pair] + ([args.tv_weight] if args.tv_weight is not None else [])
    check_common_flags(args, weights, 1, None)
    start = time.perf_counter()
    try:  # the library's errors quote 'size' and 'style_scale': name the flags
        rows = gs.run_sweep(
            args.content, args.style, args.out, optimizers=_split(args.optimizers), weight_ratios=ratios,
            content_layer_sets=_layer_sets(args.content_layer_sets, "--content-layer-sets"),
            style_layer_sets=_layer_sets(args.style_layer_sets, "--style-layer-sets"),
            backbones=_split(args.backbones), poolings=_split(args.poolings), match_weights=args.match_weights,
            lrs=gs.parse_lrs(args.lrs) if args.lrs is not None else None, resume=args.resume,
            overwrite=args.overwrite, progress=args.progress, tv_weight=args.tv_weight, lr=args.lr,
            iterations=args.iterations, init=args.init, size=args.size, style_scale=args.style_scale,
            scales=args.scales, seed=args.seed, device=args.device, bf16=args.bf16,
            normalize_gradients=args.normalize_gradients, lbfgs_history=args.lbfgs_history)
    except FaststError as e:
        raise with_flag_names(e, FLAGS) from None
    seconds = time.perf_counter() - start
    evaluations = sum(int(r["evaluations"]) for r in rows)
    best = min(rows, key=lambda r: float(r["total"]))
    print(f"{args.out}: {len(rows)} runs, {evaluations} evaluations in {seconds:.1f} s "
          f"({evaluations / seconds:.2f} passes/s); lowest fixed-scorer loss: {best['run']} ({float(best['total']):.4g}); "
          f"see summary.csv, plot_*.png, contact_sheet.png")
    return 0
