"""`fastst convert`: turn a Lightning checkpoint from `fastst train` into a .fst model file."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("convert", help="convert a training checkpoint (.ckpt) into a model file (.fst)")
    p.add_argument("checkpoint", help="a .ckpt written by fastst train")
    p.add_argument("--out", "-o", required=True, help="model file to write (.fst)")
    p.add_argument("--half", action="store_true", help="store fp16 weights (half the size)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..training import checkpoint_to_model

    print(f"fastst convert: wrote {checkpoint_to_model(args.checkpoint, args.out, half=args.half)}")
    return 0
