"""The Gatys study in one call: the experiments of the original study of Gatys et al.'s method
(optimizers at equal evaluations, learning rates, content:style weights, layer choices, loss networks),
each one sweep (gatys.sweep.run_sweep) into its own folder, then one report written from their CSVs.
Resumable: the finished runs of an interrupted study are kept."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastst.errors import FaststError

STUDY_FILE = "study.json"
FIRST_ORDER = ("sgd", "adadelta", "adagrad", "adam", "rmsprop")
# Rates tried, as multiples of the rate each optimizer used in the optimizer comparison (its default;
# SGD's is set from the first gradient), a decade either side.
LR_FACTORS = (0.1, 0.3, 1.0, 3.0, 10.0)
# β as multiples of the default, photo-like to texture-like, α fixed. The default is tuned for 512 px and
# weighs 4x more per halving of the size, hence more steps below it than above.
STYLE_WEIGHT_FACTORS = (0.001, 0.01, 0.1, 1.0, 10.0)
# Gatys et al. compare conv2_2 with conv4_2 as the content layer, and style from conv1_1 only up to conv1_1..conv5_1.
CONTENT_LAYER_SETS: tuple[tuple[str, ...] | None, ...] = (("relu2_2",), None)
STYLE_LAYER_SETS: tuple[tuple[str, ...] | None, ...] = (("relu1_1", "relu2_1"), None)
OFFLINE_BACKBONE = "vgg16-caffe"  # bundled weights: always runs
BACKBONES = (OFFLINE_BACKBONE, "vgg16", "vgg19", "resnet50")
DEFAULT_SIZE, DEFAULT_ITERATIONS = 256, 200
QUICK_SIZE, QUICK_ITERATIONS = 32, 4


@dataclass(frozen=True)
class Experiment:
    """One sweep of the study: its folder name, number of runs (known before it starts, for the progress
    bar), its run_sweep arguments, built when it starts (the rate sweep reads the optimizer comparison's
    rates), and the axes it plots."""

    name: str
    runs: int
    sweep_args: Callable[[Path], dict[str, Any]]
    plots: tuple[str, ...] = ()


@dataclass
class Backbone:
    """A loss network of the backbone comparison: where its weights come from, or why it is skipped."""

    name: str
    source: str | None = None  # what run_sweep gets: a name, or a weights file
    reason: str = ""


def resolve_backbones(names: Sequence[str], files: Mapping[str, str] | None = None,
                      download: bool = True) -> list[Backbone]:
    """Which backbones can run: vgg16-caffe always (offline); torchvision's where a weights file is given,
    their weights are cached, or (with `download`) they download now; the others carry the reason."""
    files = dict(files or {})
    for name in list(names) + list(files):
        if name not in BACKBONES:
            raise FaststError(f"unknown backbone '{name}'; choose from {', '.join(BACKBONES)}")
    stray = sorted(set(files) - set(names))
    if stray:
        raise FaststError(f"a weights file is given for {', '.join(stray)}, which is not among the backbones")
    out = []
    for name in dict.fromkeys(names):
        if name in files:
            if not Path(files[name]).is_file():
                raise FaststError(f"no such weights file for {name}", files[name])
            out.append(Backbone(name, str(files[name])))
        elif name == OFFLINE_BACKBONE or _cached(name) or download:
            out.append(_probe(name))
        else:
            out.append(Backbone(name, reason="weights not in the local cache, downloads off and no weights file given"))
    return out


def _cached(name: str) -> bool:
    """Whether torchvision's ImageNet weights for `name` are already in torch's hub cache."""
    import torch
    import torchvision

    url = torchvision.models.get_model_weights(name).IMAGENET1K_V1.url
    return (Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]).is_file()


def _probe(name: str) -> Backbone:
    """Build the backbone's loss network (downloading torchvision's weights if need be); a failure is a reason."""
    from fastst.objectives.settings import default_layers

    from .optimize import loss_network

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # torch.hub's download message
            loss_network(name, list(default_layers(name)[0]))
    except FaststError as e:
        return Backbone(name, reason=str(e))
    return Backbone(name, name)


def plan(styles: Sequence[str], backbones: Sequence[Backbone]) -> list[Experiment]:
    """The study's experiments in order; the first style image alone where one picture says enough."""
    from . import optimize as go

    first = [styles[0]]
    a, b = go.DEFAULT_CONTENT_WEIGHT, go.DEFAULT_STYLE_WEIGHT
    sources = [bb.source for bb in backbones if bb.source]

    def rates(out: Path) -> dict[str, Any]:
        return dict(style=first, optimizers=FIRST_ORDER, lrs=lr_grid(out / "optimizers" / "summary.csv"))

    return [
        Experiment("optimizers", len(go.OPTIMIZERS) * len(styles),
                   lambda out: dict(style=list(styles), optimizers=list(go.OPTIMIZERS)), ("optimizer",)),
        Experiment("learning_rates", len(FIRST_ORDER) * len(LR_FACTORS),
                   rates, ("lr",)),
        Experiment("weights", len(STYLE_WEIGHT_FACTORS) * len(styles),
                   lambda out: dict(style=list(styles), weight_ratios=[(a, b * f) for f in STYLE_WEIGHT_FACTORS]),
                   ("weight_ratio",)),
        Experiment("layers", len(CONTENT_LAYER_SETS) * len(STYLE_LAYER_SETS),
                   lambda out: dict(style=first, content_layer_sets=CONTENT_LAYER_SETS,
                                    style_layer_sets=STYLE_LAYER_SETS, match_weights=True)),
        Experiment("backbones", len(sources),
                   lambda out: dict(style=first, backbones=sources, match_weights=True),
                   ("backbone",) if len(sources) > 1 else ()),
    ]


def lr_grid(optimizer_summary: Path) -> dict[str, list[float]]:
    """LR_FACTORS times the rate each first-order optimizer used in the optimizer comparison (first style)."""
    with open(optimizer_summary, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    used = {}
    for r in rows:
        used.setdefault(r["optimizer"], float(r["lr"]))
    return {name: [float(f"{used[name] * f:.3g}") for f in LR_FACTORS] for name in FIRST_ORDER}


@dataclass
class StudySettings:
    """Everything a resumed study must share with the first run."""

    size: int = DEFAULT_SIZE
    iterations: int = DEFAULT_ITERATIONS
    seed: int = 0
    device: str = "auto"
    bf16: bool | None = None
    backbones: list[str] = field(default_factory=lambda: list(BACKBONES))


def run_study(content: str | Path, styles: Sequence[str | Path], out_dir: str | Path,
              settings: StudySettings | None = None, weights_files: Mapping[str, str] | None = None,
              download: bool = True, resume: bool = False, progress: bool = True, command: str = "") -> Path:
    """Run every experiment into out_dir/<experiment>/ and write out_dir/report.md (and .html);
    returns the report's path. `resume` keeps the finished runs of an earlier study into out_dir."""
    settings = settings or StudySettings()
    if len(styles) < 1:
        raise FaststError("the study needs at least one style image")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FaststError("exists and is not a folder", out)
    from fastst.images import load_image

    from . import optimize as go
    from .sweep import write_json

    record = _start_record(out, settings, resume)
    for image in (content, *styles):  # unreadable images fail here, before anything is written
        load_image(image)
    backbones = resolve_backbones(settings.backbones, weights_files, download)
    experiments = plan([str(s) for s in styles], backbones)
    device = go.resolve_device(settings.device)
    record.update(backbones=[asdict(b) for b in backbones], experiments=[e.name for e in experiments],
                  content=Path(content).name, styles=[Path(s).name for s in styles], cpu=cpu_name(),
                  device=str(device), bf16=go.bf16_default(device) if settings.bf16 is None else settings.bf16,
                  command=command or record.get("command", ""))
    start, before = time.perf_counter(), list(record.get("sessions", []))

    def checkpoint() -> None:  # this session's time so far, kept should it be cut off
        sessions = before + [round(time.perf_counter() - start, 1)]
        record.update(sessions=sessions, wall_seconds=round(sum(sessions), 1))
        write_json(record, out / STUDY_FILE)

    out.mkdir(parents=True, exist_ok=True)
    checkpoint()
    _run_experiments(content, experiments, out, settings, resume, progress, checkpoint)
    checkpoint()
    from .study_report import write_report
    return write_report(out)


def _start_record(out: Path, settings: StudySettings, resume: bool) -> dict[str, Any]:
    """study.json's contents so far; a second study into one folder needs `resume` and the same settings."""
    path = out / STUDY_FILE
    if not path.is_file():
        return {"settings": asdict(settings)}
    if not resume:
        raise FaststError("holds a study already: resume it, or choose another folder", out)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise FaststError(f"{STUDY_FILE} is unreadable; choose another folder", out) from None
    before, now = record.get("settings", {}), asdict(settings)
    changed = [f"{k} {now[k]!r} (was {before.get(k)!r})" for k in now if before.get(k) != now[k]]
    if changed:
        raise FaststError("cannot resume: the study here had other settings: " + "; ".join(changed), out)
    return record


def _run_experiments(content: str | Path, experiments: Sequence[Experiment], out: Path, settings: StudySettings,
                     resume: bool, progress: bool, checkpoint: Callable[[], None]) -> None:
    """Each experiment's sweep, under one progress bar over every evaluation of the study; `checkpoint`
    before every run."""
    from tqdm import tqdm

    from .sweep import run_sweep

    total = sum(e.runs for e in experiments) * settings.iterations
    bar = tqdm(total=total, unit="eval", file=sys.stderr, disable=not progress, dynamic_ncols=True,
               bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} evaluations [{elapsed}<{remaining}]")
    try:
        for e in experiments:
            if not e.runs:
                continue

            def on_run(name: str, i: int, n: int, kept: int, e: Experiment = e) -> None:
                bar.set_description_str(f"{e.name} {i}/{n}")
                bar.update(kept)
                checkpoint()

            run_sweep(content, out_dir=out / e.name, resume=resume, sheet="contact_sheet.jpg", plots=e.plots,
                      on_run=on_run, on_evaluation=lambda row: bar.update(1), size=settings.size,
                      iterations=settings.iterations, seed=settings.seed, device=settings.device, bf16=settings.bf16,
                      **e.sweep_args(out))
    finally:
        bar.close()


def cpu_name() -> str:
    """The CPU's model name and core count (for the report: timings mean little without it)."""
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    return f"{name}, {os.cpu_count()} cores"
