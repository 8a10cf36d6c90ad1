"""`fastst styles`: list the styles a model holds and how it was trained."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("styles", help="list a model's styles and training summary")
    p.add_argument("model", nargs="?", default=None, help="model file (.fst) [the bundled pretrained model]")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..modelfile import load_model

    model = load_model(args.model)
    print(f"{model.path}: {len(model.styles)} style(s)")
    for i, s in enumerate(model.styles):
        role = ("  [identity row: strength 0]" if s.kind == "identity" else
                f"  [strength row: {s.group} at strength {s.strength:g}]" if s.kind == "strength" else
                f"  [{s.group} at style size {s.style_size}]" if s.group and s.group != s.name else "")
        print(f"  {i}: {s.name}" + (f"  (sha256 {s.sha256[:12]})" if s.sha256 else "") + role)
    if model.default_strength != 1.0:
        print(f"  default strength: {model.default_strength:g}")
    net = model.net
    params = sum(p.numel() for p in net.parameters())
    print(f"  network: width {net.width}, {len(net.residual)} residual blocks, {params / 1e6:.2f} M parameters"
          + (f", {net.output} output" if net.output != "sigmoid" else ""))
    cfg = model.config
    if cfg.get("imported_from"):
        print(f"  imported from {cfg['imported_from']} ({cfg.get('source_file', '?')})")
    keys = ("steps_done", "image_size", "batch_size", "backbone", "precision", "seconds")
    summary = ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg)
    if summary:
        print(f"  trained: {summary}")
    val = cfg.get("validation")
    if val:
        per_style = ", ".join(f"{s.name} {val[f'loss_{s.name}']:.4g}" for s in model.styles if f"loss_{s.name}" in val)
        print(f"  validation: loss {val['loss']:.4g} on {val['photos']} held-out photo(s) at step {val['step']}"
              + (f" ({per_style})" if per_style else ""))
    return 0
