"""Experiment grids for the Gatys baseline: every combination of style images, optimizers, learning rates,
α:β weight ratios, content/style layer sets, backbones and loss-network pooling, each run on the same
evaluation budget, with one CSV per run, a summary scored by one fixed objective, loss-curve plots per
varied axis and a contact sheet; resumable, since a grid can take hours on a CPU."""
from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from fastst.atomic import atomic_path
from fastst.errors import FaststError
from fastst.images import load_image, save_image
from fastst.modelfile import file_sha256
from fastst.paths import check_not_inputs, check_writable_folder
from fastst.sheets import contact_sheet

from . import optimize as go
from .grid import (  # noqa: F401
    ALL,
    AXES,
    RunSpec,
    grid,
    parse_lrs,
    parse_ratio,
    run_name,
    style_labels,
    varied_axes,
)
from .scoring import scorer_network
from .sweep_plots import plot_axis, plot_lr

SUMMARY_COLUMNS = ("run", "style_image", "optimizer", "lr", "content_weight", "style_weight", "tv_weight",
                   "normalize_gradients", "content_layers", "style_layers", "backbone", "pooling", "evaluations",
                   "seconds", "passes_per_s", "content", "style", "tv", "total", "objective_total", "image", "log")
SETTINGS_FILE = "sweep.json"
SUMMARY_FILE = "summary.csv"
RunCallback = Callable[[str, int, int, int], None]  # (run name, index from 1, number of runs, evaluations reused)


def run_sweep(content: str | os.PathLike, style: str | os.PathLike | Sequence[str | os.PathLike],
              out_dir: str | os.PathLike, optimizers: Sequence[str] = ("lbfgs",),
              weight_ratios: Sequence[tuple[float, float]] = ((go.DEFAULT_CONTENT_WEIGHT, go.DEFAULT_STYLE_WEIGHT),),
              content_layer_sets: Sequence[Sequence[str] | None] = (None,),
              style_layer_sets: Sequence[Sequence[str] | None] = (None,),
              backbones: Sequence[str] = (go.DEFAULT_BACKBONE,), poolings: Sequence[str] = ("max",),
              lrs: Mapping[str, Sequence[float]] | None = None, match_weights: bool = False, progress: bool = False,
              resume: bool = False, overwrite: bool = True, sheet: str = "contact_sheet.png",
              plots: Sequence[str] | None = None,
              on_run: RunCallback | None = None,
              on_evaluation: Callable[[dict[str, float]], None] | None = None,
              **stylize_options: Any) -> list[dict[str, Any]]:
    """Run the grid and write runs/<name>.csv|.png, summary.csv, plot_<axis>.png, the contact sheet
    (`sheet`, PNG or JPEG) and sweep.json (the settings, for resuming).

    `style` is one image or several (each a value of the style axis, not blended). stylize_options go
    to gatys.optimize.stylize (iterations, size, tv_weight, lr, init, seed, device…); `lrs` maps
    optimizer names (or ALL) to learning rates, an axis of its own. The summary's losses come from
    gatys.optimize.score (fixed scorer), and it is rewritten after every run. match_weights multiplies
    each run's β and tv weight by its backbone's matched_weights factors (relative to vgg16-caffe), so
    that one α:β pair means the same balance on every backbone. `resume` keeps the runs of an earlier
    sweep into `out_dir` with the same settings whose summary row and complete CSV are there. `plots`
    names the axes to plot (default: every varied one). `on_run` and `on_evaluation` (a log row)
    report progress. Refused before any work: an input (content, style or init image) that is one of
    the files the sweep writes, through links, with or without `overwrite`; without `overwrite` or
    `resume`, a folder that holds an earlier sweep's results; a content or style image too small for a
    run's loss network or for the scorer.
    """
    _check_options(match_weights, lrs, stylize_options)
    style_paths = [style] if isinstance(style, (str, os.PathLike)) else list(style)
    labels = style_labels(style_paths)
    runs = grid(optimizers, weight_ratios, content_layer_sets, style_layer_sets, backbones, poolings or ("max",),
                lrs, labels)
    names = [run_name(i, spec) for i, spec in enumerate(runs, 1)]
    out = Path(out_dir)
    figures = {axis: out / f"plot_{axis}.png" for axis in ((varied_axes(runs) or ["optimizer"]) if plots is None
                                                           else plots)}
    outputs = [out / SETTINGS_FILE, out / SUMMARY_FILE, out / sheet, *figures.values(),
               *(path for name in names for path in run_files(out, name))]
    init = stylize_options.get("init")
    init_file = init if isinstance(init, (str, os.PathLike)) and init not in go.INITS else None
    _check_out_folder(out, outputs, [content, *style_paths, init_file], overwrite or resume)
    content_img = load_image(content)
    style_imgs = {label: load_image(p) for label, p in zip(labels, style_paths)}
    settings = _settings(content, style_paths, match_weights, stylize_options)
    previous = _previous_runs(out, settings) if resume else {}
    kept = [_reuse(out, previous.get(name)) for name in names]
    device = go.resolve_device(stylize_options.get("device", "auto"))
    todo = [spec for spec, k in zip(runs, kept) if k is None]
    _check_runs(todo, plots, device, content_img, style_imgs, [content, *style_paths], stylize_options)
    tv_weight = stylize_options.pop("tv_weight", None)
    if tv_weight is None:
        tv_weight = go.default_weights(bool(stylize_options.get("normalize_gradients")))[2]
    factors = _weight_factors(todo, content, dict(zip(labels, style_paths)), match_weights, device,
                              min(256, int(stylize_options.get("size", 256))))
    (out / "runs").mkdir(parents=True, exist_ok=True)
    write_json(settings, out / SETTINGS_FILE)
    run = partial(_run_one, out=out, content_img=content_img, factors=factors, tv_weight=tv_weight, device=device,
                  progress=progress, on_evaluation=on_evaluation, stylize_options=stylize_options)
    summary, curves, images = _run_all(runs, names, kept, style_imgs, run, out, progress, on_run)
    if todo or not all(p.is_file() for p in [*figures.values(), out / sheet]):  # else all there already
        _write_figures(figures, runs, curves, summary)
        write_sheet(content_img, style_imgs, runs, images, summary, out / sheet)
    return summary


def _check_runs(todo: Sequence[RunSpec], plots: Sequence[str] | None, device: torch.device,
                content_img: torch.Tensor, style_imgs: Mapping[str, torch.Tensor], files: Sequence[str | os.PathLike],
                options: Mapping[str, Any]) -> None:
    """Fail on unknown plot axes, layers, backbones or poolings, and, naming the file (`files`: the
    content's, then the styles' in `style_imgs`' order), on a content or style image too small on a side
    for a run's loss network at its coarsest pyramid level or for the scorer at the output size: before
    anything is written, not hours into the grid."""
    unknown = [a for a in plots or () if a not in AXES]
    if unknown:
        raise FaststError(f"cannot plot by {', '.join(unknown)}: the axes are {', '.join(AXES)}")
    size, style_scale = int(options.get("size", go.DEFAULT_SIZE)), float(options.get("style_scale", 1.0))
    coarsest = go.pyramid_sizes(size, int(options.get("scales", 1)))[0]
    sources = {label: (files[0], file) for label, file in zip(style_imgs, files[1:])}
    checked: set[tuple[int, int, str]] = set()
    for spec in todo:
        net = go.loss_network(spec.backbone, list(dict.fromkeys(sum(spec.layers(), []))), device, spec.pooling)
        for network, level in ((net, coarsest), (scorer_network(device), size)):
            if (id(network), level, spec.style) not in checked:
                checked.add((id(network), level, spec.style))
                go.level_images(network, content_img, [style_imgs[spec.style]], level, style_scale, sources[spec.style])


def _check_out_folder(out: Path, outputs: Sequence[Path], inputs: Sequence[str | os.PathLike | None],
                      overwrite: bool) -> None:
    """Before any work: `out` is a folder, or can be made one, that takes files; none of the files the
    sweep writes there (`outputs`) is one of its `inputs`, through links, so that a sweep never replaces
    the images it reads; and unless `overwrite` it holds no earlier sweep's results, which this sweep's
    would mix with or replace."""
    if out.exists() and not out.is_dir():
        raise FaststError("exists and is not a folder", out)
    check_not_inputs(outputs, inputs)
    results = [out / "runs", *outputs, *(sorted(out.glob("plot_*.png")) if out.is_dir() else [])]
    found = next((p for p in results if p.exists()), None)
    if found is not None and not overwrite:
        raise FaststError(f"holds an earlier sweep's results ({found.relative_to(out)}); use --overwrite to "
                          "replace them", out)
    check_writable_folder(out, create=True)


def _run_all(runs: Sequence[RunSpec], names: Sequence[str], kept: Sequence[Any], style_imgs: Mapping[str, torch.Tensor],
             run: Callable[..., Any], out: Path, progress: bool, on_run: RunCallback | None
             ) -> tuple[list[dict[str, Any]], list[list[dict[str, float]]], list[torch.Tensor]]:
    """Run (or keep) every run in order, rewriting summary.csv after each; (summary rows, curves, images)."""
    summary: list[dict[str, Any]] = []
    curves: list[list[dict[str, float]]] = []
    images: list[torch.Tensor] = []
    for i, (spec, name, done) in enumerate(zip(runs, names, kept), 1):
        if on_run is not None:
            on_run(name, i, len(runs), len(done[1]) if done else 0)
        if progress:
            print(f"run {i}/{len(runs)}: {name}" + (" (kept from the earlier sweep)" if done else ""),
                  file=sys.stderr, flush=True)
        if done is None:
            done = run(name, spec, style_img=style_imgs[spec.style])
        row, rows, image = done
        summary.append(row)
        curves.append(rows)
        images.append(image)
        write_summary(summary, out / SUMMARY_FILE)
    return summary, curves, images


def _write_figures(figures: Mapping[str, Path], runs: Sequence[RunSpec], curves: Sequence[Sequence[dict[str, float]]],
                   summary: Sequence[dict[str, Any]]) -> None:
    for axis, path in figures.items():
        if axis == "lr":
            plot_lr(runs, curves, summary, path)
        else:
            plot_axis(runs, curves, axis, path)


def _check_options(match_weights: bool, lrs: Mapping[str, Sequence[float]] | None,
                   stylize_options: Mapping[str, Any]) -> None:
    if match_weights and stylize_options.get("normalize_gradients", False):
        raise FaststError("--match-weights has nothing to match with --normalize-gradients: each layer's gradient "
                          "is normalised whatever the backbone's feature scale")
    if lrs and stylize_options.get("lr") is not None:
        raise FaststError(f"one learning rate for every run ({stylize_options['lr']:g}) and a learning-rate axis "
                          "were both given; give one of them")


def _run_one(name: str, spec: RunSpec, out: Path, content_img: torch.Tensor, style_img: torch.Tensor,
             factors: dict[tuple, tuple[float, float]], tv_weight: float, device: torch.device, progress: bool,
             on_evaluation: Callable[[dict[str, float]], None] | None,
             stylize_options: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, float]], torch.Tensor]:
    """Stylize one grid point; save its image and CSV and return its summary row, log rows and image."""
    c_layers, s_layers = spec.layers()
    style_factor, tv_factor = factors[_factor_key(spec)]
    options = dict(stylize_options)
    if spec.lr is not None:
        options["lr"] = spec.lr
    result = go.stylize(content_img, [style_img], backbone=spec.backbone, content_layers=c_layers,
                        style_layers=s_layers, content_weight=spec.content_weight,
                        style_weight=spec.style_weight * style_factor, tv_weight=tv_weight * tv_factor,
                        optimizer=spec.optimizer, pooling=spec.pooling, progress=progress, callback=on_evaluation,
                        **options)
    image_path, log_path = run_files(out, name)
    save_image(result.image, image_path)
    go.write_log(result.rows, log_path)
    scored = go.score(content_img, [style_img], result.image, style_scale=options.get("style_scale", 1.0),
                      device=device)
    s = result.settings
    row = {"run": name, "style_image": spec.style, "optimizer": spec.optimizer, "lr": f"{s['lr']:.6g}",
           "content_weight": spec.content_weight, "style_weight": f"{s['style_weight']:.6g}",
           "tv_weight": f"{s['tv_weight']:.6g}", "normalize_gradients": int(s["normalize_gradients"]),
           "content_layers": "+".join(c_layers), "style_layers": "+".join(s_layers),
           "backbone": spec.backbone, "pooling": spec.pooling, "evaluations": result.evaluations,
           "seconds": round(result.seconds, 3), "passes_per_s": round(result.passes_per_second, 4),
           "content": f"{scored['content']:.6g}", "style": f"{scored['style']:.6g}", "tv": f"{scored['tv']:.6g}",
           "total": f"{scored['total']:.6g}", "objective_total": f"{result.final['total']:.6g}",
           "image": os.path.relpath(image_path, out), "log": os.path.relpath(log_path, out)}
    return row, result.rows, result.image


def run_files(out: Path, name: str) -> tuple[Path, Path]:
    """Where a sweep into `out` writes run `name`'s image and its per-evaluation CSV."""
    return out / "runs" / f"{name}.png", out / "runs" / f"{name}.csv"


def _factor_key(spec: RunSpec) -> tuple:
    return spec.backbone, spec.content_layers, spec.style_layers, spec.style


def _weight_factors(runs: Sequence[RunSpec], content: str | os.PathLike, styles: Mapping[str, str | os.PathLike],
                    match_weights: bool, device: torch.device, size: int) -> dict[tuple, tuple[float, float]]:
    """Per backbone, layer sets and style: the factors on β and the tv weight (1 without match_weights),
    measured at `size` px on the content and style files (`styles` by label), which errors name."""
    factors: dict[tuple, tuple[float, float]] = {}
    for spec in runs:
        key = _factor_key(spec)
        if key in factors:
            continue
        factors[key] = (1.0, 1.0)
        if match_weights:
            m = go.matched_weights(spec.backbone, content, styles[spec.style], spec.content_layers,
                                   spec.style_layers, size=size, device=device)
            factors[key] = (m["style_weight"] / go.DEFAULT_STYLE_WEIGHT, m["tv_weight"] / go.DEFAULT_TV_WEIGHT)
    return factors


def _sha(path: str | os.PathLike) -> str:
    return file_sha256(path)[:16]


def _settings(content: str | os.PathLike, styles: Sequence[str | os.PathLike], match_weights: bool,
              options: Mapping[str, Any]) -> dict[str, Any]:
    """What a resumed sweep must share with the first: the images (by content hash) and every setting."""
    return {"content": {"name": Path(content).name, "sha256": _sha(content)},
            "styles": [{"name": Path(s).name, "sha256": _sha(s)} for s in styles],
            "match_weights": bool(match_weights),
            **{k: (v if isinstance(v, (int, float, bool, str, type(None))) else str(v)) for k, v in sorted(options.items())}}


def write_json(data: Mapping[str, Any], path: Path) -> Path:
    """`data` as indented JSON at `path`, written whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def _previous_runs(out: Path, settings: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The summary rows of an earlier sweep into `out`, by run name; its settings must be these."""
    try:
        before = json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))
        with open(out / SUMMARY_FILE, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError):
        return {}  # nothing (readable) to resume: run everything
    changed = [f"{k} {settings.get(k)!r} (was {before.get(k)!r})" for k in sorted(set(settings) | set(before))
               if settings.get(k) != before.get(k)]
    if changed:
        raise FaststError("cannot resume: the sweep here had other settings: " + "; ".join(changed), out)
    return {r["run"]: r for r in rows if r.get("run")}


def _reuse(out: Path, row: dict[str, str] | None) -> tuple[dict[str, Any], list[dict[str, float]], torch.Tensor] | None:
    """An earlier run's row, log and image, if its CSV holds every evaluation its summary row counts."""
    if row is None:
        return None
    try:
        rows = go.read_log(out / row["log"])
        if len(rows) != int(row["evaluations"]) or not rows:
            return None
        return dict(row), rows, load_image(out / row["image"])
    except (OSError, KeyError, ValueError, FaststError):
        return None


def write_sheet(content_img: torch.Tensor, style_imgs: Mapping[str, torch.Tensor], runs: Sequence[RunSpec],
                images: Sequence[torch.Tensor], summary: Sequence[dict[str, Any]], path: Path) -> Path:
    """The contact sheet: content and styles on the first row, then the runs, a new row wherever a
    setting other than the last varied axis changes (so each row reads along that axis); tiles of
    256 px, 192 beyond 18 tiles so that large grids stay small files."""
    axes = varied_axes(runs) or ["optimizer"]
    groups: list[list[int]] = []
    for k, spec in enumerate(runs):
        key = tuple(spec.value(a) for a in axes[:-1])
        if not groups or tuple(runs[groups[-1][0]].value(a) for a in axes[:-1]) != key:
            groups.append([])
        groups[-1].append(k)
    head = [content_img, *style_imgs.values()]
    head_labels = ["content"] + [f"style {s}" if s else "style" for s in style_imgs]
    cols = min(max(len(head), max(len(g) for g in groups)), 8)
    blank = torch.ones_like(content_img[:, :8, :8])
    tiles, labels = list(head), list(head_labels)
    for group in [None] + groups:  # None: pad the header row
        if group is not None:
            for k in group:
                tiles.append(images[k])
                labels.append(_label(k + 1, runs[k], axes, summary[k]))
        while len(tiles) % cols:
            tiles.append(blank)
            labels.append("")
    return contact_sheet(tiles, labels, path, tile=256 if len(tiles) <= 18 else 192, cols=cols, quality=80)


def _label(index: int, spec: RunSpec, axes: Sequence[str], row: dict[str, Any]) -> str:
    parts = [f"{a.replace('_', ' ')}: {spec.value(a)}" for a in axes]
    return f"#{index} " + "\n".join(parts) + f"\nscore {float(row['total']):.3g}"


def write_summary(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """summary.csv, one row per run, written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return path
