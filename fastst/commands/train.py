"""`fastst train`: train a fast multi-style stylizer on a folder of photos."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..errors import FaststError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a fast stylizer for one or more style images",
                       description="Train a feed-forward stylizer (Turi-style transformer, perceptual losses).")
    p.add_argument("--style", action="append", required=True, metavar="IMG",
                   help="style image; repeat for a multi-style model (name: the file stem, or NAME=IMG)")
    p.add_argument("--data", default=None, help="folder of training photos, searched recursively "
                   "(default: the bundled samples in datasets/samples/photos; use COCO for real models)")
    p.add_argument("--out", "-o", required=True, help="model file to write (.fst)")
    p.add_argument("--val-data", metavar="FOLDER",
                   help="held-out photos, scored whole (long side --image-size) in every style at every checkpoint "
                        "and at the end: val/loss in the CSV log, on the loss plot and in the model file")
    p.add_argument("--preset", choices=["quick", "full"], default=None,
                   help="quick: ~10 min on a CPU; full: the published recipe (256 px, batch 4, 40k steps)")
    p.add_argument("--image-size", type=int, help="training crop size in px [256]")
    p.add_argument("--style-size", type=int, help="long side of the style images [2 × image size]")
    p.add_argument("--crop-scale", type=float, nargs=2, metavar=("MIN", "MAX"),
                   help="area fraction of a photo each random crop covers [0.35 1]; raise MIN when the model "
                        "will see whole photos at about the training size (objects then look the same size)")
    p.add_argument("--batch-size", type=int, help="[4]")
    p.add_argument("--steps", type=int, help="optimizer steps [40000]")
    p.add_argument("--lr", type=float, help="Adam learning rate [1e-3]")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"],
                   help="constant (default), or cosine: decay the rate to zero over --steps (for fine-tuning an --init model)")
    p.add_argument("--objective", choices=["perceptual", "gatys"], default="perceptual",
                   help="perceptual: Johnson et al.'s layers and weights (default); gatys: Gatys' objective "
                   "(gatys stylize's layers and α, β, TV weights) at an output of --style-size px, "
                   "which --content/--style/--tv-weight then set")
    p.add_argument("--content-weight", type=float, help="[1]")
    p.add_argument("--style-weight", type=float, help="[5]")
    p.add_argument("--tv-weight", type=float, help="[1e4]")
    p.add_argument("--content-layers", help="comma-separated [relu2_2]")
    p.add_argument("--style-layers", help="comma-separated, each NAME or NAME:WEIGHT [relu1_2,relu2_2,relu3_3,relu4_3]")
    p.add_argument("--backbone", help="loss network: vgg16-caffe (default, offline), vgg16, vgg19 or a weights file")
    p.add_argument("--preview-every", type=int, help="steps between preview grids [500]")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints [500]")
    p.add_argument("--workers", type=int, help="data-loader worker processes [0]")
    p.add_argument("--seed", type=int, help="random seed [0]")
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (e.g. OUT_logs/checkpoints/last.ckpt)")
    p.add_argument("--init", metavar="MODEL", help="start from a trained .fst model ('pretrained': the bundled one): "
                   "its convs, and the norms of styles with the same names; new styles start from its mean style "
                   "[--preset quick: pretrained, unless --resume or --width is given; 'none': from scratch]")
    p.add_argument("--width", type=int, help="channels of the first conv; the others have 2× and 4× [32, or the --init "
                   "model's]: narrower runs faster, wider has more capacity; a wider run grows an --init model")
    p.add_argument("--only-norms", action="store_true", default=None,
                   help="with --init: train only the per-style norm scales and shifts (add a style to a model "
                   "without changing its others)")
    p.add_argument("--log-dir", help="checkpoints, previews, CSV log and loss plot [OUT_logs/]")
    p.add_argument("--accelerator", default="auto", help="cpu, gpu, mps or auto")
    p.add_argument("--devices", default="auto", help="number of devices or auto")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--precision", default=None,
                   help="32-true, bf16-mixed, 16-mixed [bf16-mixed on GPUs and bf16-capable CPUs, else 32-true]")
    p.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, fsdp … (Lightning strategies)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    p.add_argument("--half", action="store_true", help="store weights as fp16 in the model file (half the size)")
    p.set_defaults(func=run)
    return p


def build_config(args: argparse.Namespace):
    """TrainConfig from the preset, overridden by any option given."""
    from ..training import PRESETS, TrainConfig, gatys_objective

    values = dict(PRESETS[args.preset]) if args.preset else {}
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = tuple(x.strip() for x in v.split(",") if x.strip()) if f.name.endswith("_layers") else v
    if "style_layers" in values and any(":" in n for n in values["style_layers"]):
        pairs = [n.partition(":") for n in values["style_layers"]]
        try:
            values["style_layer_weights"] = tuple(float(w) if sep else 1.0 for _, sep, w in pairs)
        except ValueError:
            raise FaststError(f"--style-layers: weights must be numbers: {args.style_layers}") from None
        values["style_layers"] = tuple(n for n, _, _ in pairs)
    if getattr(args, "objective", "perceptual") == "gatys":
        if args.content_layers or args.style_layers:
            raise FaststError("--objective gatys sets the layers: drop --content-layers and --style-layers")
        size = values.get("style_size") or 2 * values.get("image_size", TrainConfig.image_size)
        values.update(gatys_objective(size, args.content_weight, args.style_weight, args.tv_weight))
    return TrainConfig(**values)


def resolve_init(args: argparse.Namespace) -> str | None:
    """The model to start from: --init as given ('none': from scratch), else the preset's (quick: the
    bundled pretrained model) where --resume or --width does not rule it out."""
    from ..training import PRESET_INIT

    if args.init is not None:
        return None if args.init.lower() == "none" and not Path(args.init).exists() else args.init
    if args.resume is None and args.width is None and args.preset in PRESET_INIT:
        print(f"fastst train: preset {args.preset} starts from the bundled pretrained model (--init none: from scratch)")
        return PRESET_INIT[args.preset]
    return None


def default_data() -> Path:
    from ..samples import sample_photos

    d = sample_photos()
    if not d.is_dir():
        raise FaststError("no --data folder given and the bundled samples are not here (installed without the repository?)")
    return d


def run(args: argparse.Namespace) -> int:
    from ..training import QUICK_SECONDS_PER_STEP, default_precision, train

    cfg = build_config(args)
    names, paths = [], []
    for s in args.style:
        name, sep, path = s.partition("=")
        if sep and not Path(s).exists():
            names.append(name), paths.append(path)
        else:
            names.append(Path(s).stem), paths.append(s)
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    precision = args.precision or default_precision(args.accelerator)
    if args.preset == "quick":
        per_step = QUICK_SECONDS_PER_STEP["bf16" if "bf16" in precision else "fp32"] * (cfg.image_size / 160) ** 2
        print(f"fastst train: preset quick, {cfg.steps} steps at {cfg.image_size} px, precision {precision}: "
              f"expected about {cfg.steps * per_step / 60:.0f} min on a 2-core CPU")
    out = train(paths, args.data or default_data(), args.out, cfg, log_dir=args.log_dir, resume=args.resume,
                accelerator=args.accelerator, devices=devices, precision=precision, strategy=args.strategy,
                style_names=names, num_nodes=args.num_nodes, tensorboard=args.tensorboard, half=args.half,
                init=resolve_init(args), val_data=args.val_data)
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:  # under DDP every process returns here; rank 0 wrote the file
        print(f"fastst train: wrote {out}")
    return 0
