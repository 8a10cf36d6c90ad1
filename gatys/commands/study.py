"""`gatys study --out DIR`: the whole Gatys study (optimizers, learning rates, weights, layers, loss
networks) on one photo and two styles, into one report."""
from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from fastst.errors import FaststError

SAMPLES = Path(__file__).resolve().parents[2] / "datasets" / "samples"
DEFAULT_CONTENT = SAMPLES / "photos" / "skimage_chelsea.jpg"
DEFAULT_STYLES = (SAMPLES / "styles" / "starry_night.jpg", SAMPLES / "styles" / "hokusai_kazusa_sea_route.jpg")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..study import (
        BACKBONES,
        DEFAULT_ITERATIONS,
        DEFAULT_SIZE,
        FIRST_ORDER,
        LR_FACTORS,
        QUICK_ITERATIONS,
        QUICK_SIZE,
    )
    p = sub.add_parser(
        "study", help="the whole Gatys study (optimizers, learning rates, weights, layers, loss networks) into "
                      "one report",
        description="Run the experiments of the Gatys study as sweeps into DIR/<experiment>/ and write "
                    "DIR/report.md and DIR/report.html from their CSVs: the six optimizers at equal evaluations; "
                    f"{', '.join(FIRST_ORDER)} at {len(LR_FACTORS)} learning rates each; five content:style weight "
                    "ratios; early/deep content and shallow/full style layers; the loss networks whose weights are "
                    "available, at matched balance.")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--content", default=None, metavar="IMAGE",
                   help=f"content photo (default: the bundled {DEFAULT_CONTENT.name})")
    p.add_argument("--styles", nargs="+", default=None, metavar="IMAGE",
                   help="style images; the first serves the one-style experiments (default: the bundled "
                        + " and ".join(s.name for s in DEFAULT_STYLES) + ")")
    p.add_argument("--quick", action="store_true",
                   help=f"toy size for tests: {QUICK_SIZE} px, {QUICK_ITERATIONS} evaluations a run")
    p.add_argument("--size", type=int, default=None,
                   help=f"long side in px (default: {DEFAULT_SIZE}; {QUICK_SIZE} with --quick)")
    p.add_argument("--iterations", type=int, default=None,
                   help=f"loss evaluations per run (default: {DEFAULT_ITERATIONS}; {QUICK_ITERATIONS} with --quick)")
    p.add_argument("--backbones", nargs="+", default=list(BACKBONES), metavar="NAME",
                   help="loss networks to compare (default: %(default)s); torchvision's run where their weights are "
                        "cached, download, or --weights gives a file; the rest are listed as skipped")
    p.add_argument("--weights", nargs="+", default=[], metavar="NAME=FILE",
                   help="a local state-dict file for a torchvision backbone, e.g. vgg19=vgg19.pth (a ResNet50 "
                        "file's name must contain 'resnet' for its layers to be found)")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="never try to download torchvision weights")
    p.add_argument("--resume", action="store_true",
                   help="continue a study in DIR: keep every run whose CSV is complete, run the rest")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--device", default="auto", metavar="{auto,cpu,cuda,mps}", help="(default: %(default)s)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast for the loss network (default: on for CPUs with hardware bf16)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    p.set_defaults(func=run)
    return p


def _weights_files(items: list[str]) -> dict[str, str]:
    files = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise FaststError(f"--weights '{item}' must be NAME=FILE, e.g. vgg19=vgg19.pth")
        if name.strip() in files:
            raise FaststError(f"--weights gives {name.strip()} twice")
        files[name.strip()] = path.strip()
    return files


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this study (without --resume and progress flags)."""
    from ..study import BACKBONES

    words = ["gatys", "study", "--out", args.out] + (["--quick"] if args.quick else [])
    words += (["--content", args.content] if args.content else []) + (["--styles", *args.styles] if args.styles else [])
    words += [w for flag in ("size", "iterations") if getattr(args, flag) for w in (f"--{flag}", str(getattr(args, flag)))]
    words += (["--backbones", *args.backbones] if list(args.backbones) != list(BACKBONES) else [])
    words += (["--weights", *args.weights] if args.weights else []) + ([] if args.download else ["--no-download"])
    words += (["--seed", str(args.seed)] if args.seed else []) + (["--device", args.device] if args.device != "auto" else [])
    words += [] if args.bf16 is None else ["--bf16" if args.bf16 else "--no-bf16"]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    from ..study import (
        DEFAULT_ITERATIONS,
        DEFAULT_SIZE,
        QUICK_ITERATIONS,
        QUICK_SIZE,
        StudySettings,
        run_study,
    )
    content = Path(args.content) if args.content else DEFAULT_CONTENT
    styles = [Path(s) for s in args.styles] if args.styles else list(DEFAULT_STYLES)
    for path in [content, *styles]:
        if not path.is_file():
            bundled = path == DEFAULT_CONTENT or path in DEFAULT_STYLES
            raise FaststError("no such image" + (" (the bundled samples come with a clone of the repository)"
                                                 if bundled else ""), path)
    settings = StudySettings(
        size=args.size or (QUICK_SIZE if args.quick else DEFAULT_SIZE),
        iterations=args.iterations or (QUICK_ITERATIONS if args.quick else DEFAULT_ITERATIONS),
        seed=args.seed, device=args.device, bf16=args.bf16, backbones=list(dict.fromkeys(args.backbones)))
    if settings.size <= 0 or settings.iterations <= 0:
        raise FaststError("--size and --iterations must be positive")
    start = time.perf_counter()
    report = run_study(content, styles, args.out, settings, _weights_files(args.weights), download=args.download,
                       resume=args.resume, progress=args.progress, command=_command(args))
    print(f"{report} (and {report.with_suffix('.html').name}): the study in {time.perf_counter() - start:.0f} s; "
          f"every CSV behind it is in {args.out}")
    return 0
