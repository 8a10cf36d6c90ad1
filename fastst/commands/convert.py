"""`fastst convert`: turn a Lightning checkpoint from `fastst train`, or a model of pytorch/examples'
fast_neural_style, into a .fst model file."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("convert", help="convert a training checkpoint (.ckpt) or a fast_neural_style model (.pth) "
                                       "into a model file (.fst)")
    p.add_argument("checkpoint", metavar="FILE",
                   help="a .ckpt written by fastst train, or a .pth saved by pytorch/examples' fast_neural_style "
                        "(e.g. saved_models/mosaic.pth): the same network, imported exactly")
    p.add_argument("--out", "-o", required=True, help="model file to write (.fst)")
    p.add_argument("--style-name", metavar="NAME", help="a .pth model's style name (default: the file's stem)")
    p.add_argument("--half", action="store_true", help="store fp16 weights (half the size)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out model (never an input)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import FaststError
    from ..paths import check_not_inputs, check_overwrite, check_writable_folder

    if Path(args.out).suffix != ".fst":
        raise FaststError("the model file should end in .fst", args.out)
    check_not_inputs([args.out], [args.checkpoint])  # a checkpoint named .fst must not be replaced
    check_overwrite([args.out], args.overwrite)
    check_writable_folder(Path(args.out).parent)
    if Path(args.checkpoint).suffix.lower() in (".pth", ".pt", ".model"):
        from ..importers import import_model

        out = import_model(args.checkpoint, args.out, style_name=args.style_name, half=args.half)
    else:
        if args.style_name:
            raise FaststError("--style-name is for .pth models; a checkpoint keeps its style names")
        from ..training.checkpoints import checkpoint_to_model

        out = checkpoint_to_model(args.checkpoint, args.out, half=args.half)
    print(f"fastst convert: wrote {out}")
    return 0
