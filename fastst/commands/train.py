"""`fastst train`: train a fast multi-style stylizer on a folder of photos. The training settings' flags,
help and defaults come from `TrainConfig`'s fields; the library's errors get the flags' names here."""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import FaststError, Interrupted
from ..paths import check_not_inputs, check_overwrite, check_writable_folder
from ..training.config import MIN_STYLE_SIZE, PRESETS, TrainConfig
from .flags import with_flag_names

# flags of train()'s arguments that are no TrainConfig field; the library's errors quote these names
RUN_FLAGS = {"init": "--init", "resume": "--resume", "data": "--data", "val_data": "--val-data", "styles": "--style",
             "accelerator": "--accelerator", "devices": "--devices", "strategy": "--strategy",
             "precision": "--precision", "num_nodes": "--num-nodes", "identity": "--identity", "exclude": "--exclude",
             "keep_rows": "--keep-rows"}


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if all(isinstance(v, str) for v in value) else " ".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field that has one, e.g. --image-size for image_size, its help text
    from the field with the field's default appended; every flag defaults to None (not given), so
    that a preset, then the dataclass, supply what the command line leaves out."""
    for f in dataclasses.fields(TrainConfig):
        flag = f.metadata.get("flag")
        if flag is None:
            continue
        shown = "" if f.default is None or flag.get("action") == "store_true" else f" [{_shown(f.default)}]"
        p.add_argument("--" + f.name.replace("_", "-"), default=None, help=f.metadata["help"] + shown, **flag)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a fast stylizer for one or more style images",
                       description="Train a feed-forward stylizer (Turi-style transformer, perceptual losses).")
    p.add_argument("--style", action="append", default=[], metavar="IMG",
                   help="style image; repeat for a multi-style model (name: the file stem, or NAME=IMG); "
                   "may be left out with --identity, or with --init MODEL and a style weight of 0 (e.g. --preset "
                   "stable): every row of MODEL then trains in place (see --keep-rows)")
    p.add_argument("--data", default=None, help="folder of training photos, searched recursively "
                   "(default: the bundled samples in datasets/samples/photos; use COCO for real models)")
    p.add_argument("--out", "-o", required=True, help="model file to write (.fst)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out model, and an earlier run's checkpoints and logs in the log folder "
                        "(never an input)")
    p.add_argument("--exclude", metavar="LIST", help="a text file naming photos of --data to leave out, one a "
                   "line, relative to --data ('#' starts a comment): e.g. benchmarks/heldout_photos.txt")
    p.add_argument("--val-data", metavar="FOLDER",
                   help="held-out photos, scored whole (long side --image-size) in every style at every checkpoint "
                        "and at the end: val/loss in the CSV log, on the loss plot and in the model file")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="quick: ~2 min on a 2-core CPU with hardware bf16, ~11 without; full: the published recipe "
                        "(256 px, batch 4, 40k steps); stable: "
                        "make the --init model (default: the bundled one) flicker less on video, keeping its look")
    p.add_argument("--objective", choices=["perceptual", "gatys"], default="perceptual",
                   help="perceptual: Johnson et al.'s layers and weights; gatys: Gatys' objective "
                   "(gatys stylize's layers and α, β, TV weights) at an output of --style-size px, "
                   "which --content/--style/--tv-weight then set (default: %(default)s)")
    add_config_flags(p)
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (e.g. OUT_logs/checkpoints/last.ckpt)")
    p.add_argument("--init", metavar="MODEL", help="start from a trained .fst model ('pretrained': the bundled one): "
                   "its convs, and the norms of styles with the same names; new styles start from its mean style "
                   "[--preset quick: pretrained, unless --resume or --width is given; 'none': from scratch]")
    p.add_argument("--keep-rows", action="store_true",
                   help="with --init: train every row of MODEL in place (styles, identity and stroke rows; its table "
                   "and default strength kept), each --style NAME=IMG giving the image of MODEL's style NAME; "
                   "implied when no --style is given")
    p.add_argument("--log-dir", help="checkpoints, previews, CSV log and loss plot [OUT_logs/]; one holding an "
                   "earlier run's checkpoints is refused unless --resume continues that run or --overwrite "
                   "replaces them")
    p.add_argument("--accelerator", default="auto", help="cpu, gpu, mps or auto (default: %(default)s)")
    p.add_argument("--devices", default="auto", help="number of devices or auto (default: %(default)s)")
    p.add_argument("--num-nodes", type=int, default=1, help="(default: %(default)s)")
    p.add_argument("--precision", default=None,
                   help="32-true, bf16-mixed, 16-mixed [bf16-mixed on GPUs and bf16-capable CPUs, else 32-true]")
    p.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, fsdp … (Lightning strategies) "
                   "(default: %(default)s)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    p.add_argument("--half", action="store_true", help="store weights as fp16 in the model file (half the size)")
    p.set_defaults(func=run)
    return p


def flag_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """`func`, re-raising the library's errors with the flag names of TrainConfig's fields and RUN_FLAGS."""
    flags = {f.name: "--" + f.name.replace("_", "-") for f in dataclasses.fields(TrainConfig)} | RUN_FLAGS

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Interrupted as e:  # the user's Ctrl-C: where to resume, as a command line says it
            raise Interrupted(f"interrupted; resume with --resume {e.checkpoint}" if e.checkpoint else str(e),
                              checkpoint=e.checkpoint) from None
        except FaststError as e:
            raise with_flag_names(e, flags) from None
    return wrapped


def _style_layers(values: dict[str, Any], text: str) -> None:
    """--style-layers NAME[:WEIGHT],…: the layers, and their weights where any is given."""
    pairs = [n.partition(":") for n in values["style_layers"]]
    if any(sep for _, sep, _ in pairs):
        try:
            values["style_layer_weights"] = tuple(float(w) if sep else 1.0 for _, sep, w in pairs)
        except ValueError:
            raise FaststError(f"--style-layers: weights must be numbers: {text}") from None
        values["style_layers"] = tuple(n for n, _, _ in pairs)


@flag_errors
def build_config(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from the preset, overridden by any option given."""
    values = dict(PRESETS[args.preset]) if args.preset else {}
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = tuple(x.strip() for x in v.split(",") if x.strip()) if f.name.endswith("_layers") else v
    if "style_layers" in values:
        _style_layers(values, args.style_layers)
    if getattr(args, "objective", "perceptual") == "gatys":
        from ..objectives.settings import gatys_objective

        if args.content_layers or args.style_layers:
            raise FaststError("--objective gatys sets the layers: drop --content-layers and --style-layers")
        size = values.get("style_size") or 2 * values.get("image_size", TrainConfig.image_size)
        if not isinstance(size, int) or size < MIN_STYLE_SIZE:  # the weights below divide by it; TrainConfig checks the rest
            raise FaststError(f"the style size (--style-size, or twice --image-size) must be at least {MIN_STYLE_SIZE} px, "
                              f"got {size}")
        values.update(gatys_objective(size, args.content_weight, args.style_weight, args.tv_weight))
    return TrainConfig(**values)


def resolve_init(args: argparse.Namespace) -> str | None:
    """The model to start from: --init as given ('none': from scratch), else the preset's (quick: the
    bundled pretrained model) where --resume or --width does not rule it out."""
    from ..training.config import PRESET_INIT

    if args.init is not None:
        return None if args.init.lower() == "none" and not Path(args.init).exists() else args.init
    if args.resume is None and args.width is None and args.preset in PRESET_INIT:
        print(f"fastst train: preset {args.preset} starts from the bundled pretrained model (--init none: from scratch)")
        return PRESET_INIT[args.preset]
    return None


def default_data() -> Path:
    """The training photos when no --data is given: the bundled samples."""
    from ..samples import sample_photos

    d = sample_photos()
    if not d.is_dir():
        raise FaststError("no --data folder given and the bundled samples are not here (installed without the repository?)")
    return d


def style_arguments(given: list[str]) -> tuple[list[str], list[str]]:
    """(names, paths) of the --style arguments: IMG (named by its stem) or NAME=IMG."""
    names, paths = [], []
    for s in given:
        name, sep, path = s.partition("=")
        if sep and not Path(s).exists():
            names.append(name), paths.append(path)
        else:
            names.append(Path(s).stem), paths.append(s)
    return names, paths


def read_exclude(path: str | None) -> list[str]:
    """The photo paths listed in an --exclude file (blank lines and '#' comments skipped)."""
    if path is None:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FaststError("no such --exclude list", path) from None
    except IsADirectoryError:
        raise FaststError("is a folder; --exclude takes a text file of photo paths", path) from None
    except PermissionError:
        raise FaststError("cannot read the --exclude list (permission denied)", path) from None
    except UnicodeDecodeError:
        raise FaststError("the --exclude list is not a text file (UTF-8)", path) from None
    except OSError as e:
        raise FaststError(f"cannot read the --exclude list ({e.strerror or e})", path) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


#: What a training run writes into its log folder (globs relative to it); a new run replaces them.
RUN_LOGS = ("checkpoints/*.ckpt", "previews/step*.png", "metrics.csv", "metrics.part*.csv", "hparams.yaml",
            "losses.png", "tensorboard")


def log_folder(args: argparse.Namespace) -> Path:
    """The run's log folder: --log-dir, else OUT_logs beside the model file."""
    out = Path(args.out)
    return Path(args.log_dir) if args.log_dir else out.parent / (out.stem + "_logs")


def earlier_run_logs(log_dir: Path) -> list[Path]:
    """The checkpoints and logs an earlier training run left in `log_dir` (RUN_LOGS), sorted."""
    if not log_dir.is_dir():
        return []
    return sorted({p for pattern in RUN_LOGS for p in log_dir.glob(pattern)})


def check_log_folder(log_dir: Path, resume: str | None, overwrite: bool) -> list[Path]:
    """The earlier run's files in `log_dir` that this run replaces (none when it resumes: a resumed run
    continues its folder on purpose); FaststError where there are some and `overwrite` is not given,
    since Lightning would mix the two runs (its last checkpoint becoming last-v1.ckpt)."""
    if resume is not None:
        return []
    found = earlier_run_logs(log_dir)
    if found and not overwrite:
        raise FaststError(f"holds an earlier run's checkpoints and logs ({found[0].relative_to(log_dir)}); "
                          "use --overwrite to replace them, or --resume CKPT to continue that run", log_dir)
    return found


def replacing_logs(log_dir: Path, files: list[Path], fit: Callable[[], Path]) -> Path:
    """`fit()` with an earlier run's `files` moved aside: dropped once this run has written a checkpoint
    (or finished), put back if it stops before that (refused by the trainer's own checks, or
    interrupted before its first checkpoint), so that nothing is lost to a run that replaced nothing."""
    if not files:
        return fit()
    check_writable_folder(log_dir)
    aside = Path(tempfile.mkdtemp(prefix=".fastst-replaced-", dir=log_dir))
    moved: list[tuple[Path, Path]] = []
    try:
        try:
            for f in files:
                dest = aside / f.relative_to(log_dir)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, dest)
                moved.append((f, dest))
        except OSError as e:
            raise FaststError(f"cannot move the earlier run's logs aside ({(e.strerror or str(e)).lower()})",
                              log_dir) from None
        with warnings.catch_warnings():  # Lightning's "not empty" warnings: about what was moved aside
            from ..training.fit import RESUME_WARNING
            warnings.filterwarnings("ignore", message=RESUME_WARNING)
            return fit()
    except BaseException:
        if not any((log_dir / "checkpoints").glob("*.ckpt")):
            _put_back(moved)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def drop_if_unused(log_dir: Path) -> None:
    """Remove a log folder this run created and left holding nothing of use (no file but Lightning's
    hparams.yaml): a run that failed before its first step leaves no empty folder behind."""
    if log_dir.is_dir() and all(p.is_dir() or p.name == "hparams.yaml" for p in log_dir.rglob("*")):
        shutil.rmtree(log_dir, ignore_errors=True)


def _put_back(moved: list[tuple[Path, Path]]) -> None:
    """Return moved files (and the TensorBoard folder) to where they were, replacing what a failed run
    wrote there."""
    for original, dest in moved:
        if dest.exists():
            original.parent.mkdir(parents=True, exist_ok=True)
            if original.is_dir() and not original.is_symlink():
                shutil.rmtree(original)
            os.replace(dest, original)


def run(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities import rank_zero_only

    from ..training.config import QUICK_SECONDS_PER_STEP
    from ..training.fit import train, trainer_precision

    cfg = build_config(args)
    init = resolve_init(args)
    if not args.style and not cfg.identity and init is None and args.resume is None:
        raise FaststError("give at least one --style image (or --identity, or --init MODEL to fine-tune its rows)")
    names, paths = style_arguments(args.style)
    exclude = read_exclude(args.exclude)
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    precision = args.precision or trainer_precision(args.accelerator)
    if args.preset == "quick":
        per_step = QUICK_SECONDS_PER_STEP["bf16" if "bf16" in precision else "fp32"] * (cfg.image_size / 160) ** 2
        print(f"fastst train: preset quick, {cfg.steps} steps at {cfg.image_size} px, precision {precision}: "
              f"expected about {cfg.steps * per_step / 60:.0f} min on a 2-core CPU")
    log_dir = log_folder(args)
    data = args.data or default_data()
    if Path(args.out).suffix != ".fst":
        raise FaststError("the model file should end in .fst", args.out)
    # an input named as --out is refused as one (train checks this too), not as an existing output
    check_not_inputs([args.out], [*paths, None if str(init) == "pretrained" else init, args.resume, args.exclude],
                     [data, args.val_data])
    check_overwrite([args.out], args.overwrite)
    # processes Lightning starts for the other devices find the folder in use by rank 0
    earlier = check_log_folder(log_dir, args.resume, args.overwrite) if rank_zero_only.rank == 0 else []

    def fit() -> Path:
        return flag_errors(train)(paths, data, args.out, cfg, log_dir=log_dir, resume=args.resume,
                                  accelerator=args.accelerator, devices=devices, precision=precision,
                                  strategy=args.strategy, style_names=names, num_nodes=args.num_nodes,
                                  tensorboard=args.tensorboard, half=args.half, init=init,
                                  val_data=args.val_data, exclude=exclude, keep_rows=args.keep_rows)

    created = not log_dir.exists()
    try:
        out = replacing_logs(log_dir, earlier, fit)
    except BaseException:
        if created and rank_zero_only.rank == 0:
            drop_if_unused(log_dir)
        raise
    if rank_zero_only.rank == 0:  # under DDP every process returns here; rank 0 wrote the file
        print(f"fastst train: wrote {out}")
    return 0
