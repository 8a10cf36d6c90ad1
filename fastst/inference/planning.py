"""Planning a stylization run before anything is written: which inputs (images and videos, folders
searched recursively), which styles, and the checked output path of every (input, style) pair:
no output replaces an input, no two outputs collide, no existing file is replaced unless asked."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import check_name_length
from ..errors import FaststError
from ..images import IMAGE_EXTENSIONS, IMAGE_OUTPUT_SUFFIXES, MIN_SIDE, find_files, load_pil
from ..paths import check_not_inputs, check_writable_folder
from .videoio import OUTPUT_FORMATS, VIDEO_EXTENSIONS, output_size, output_suffix, probe_video

MODEL_SUFFIXES = (".fst", ".onnx", ".ckpt", ".pt", ".pth")
Style = int | dict[str, float]  # a style index, or a {name: weight} blend summing to 1


@dataclass
class Input:
    """One input file: an image or a video, and the folder it was found in (None: given directly)."""

    path: Path
    kind: str  # "image" or "video"
    folder: Path | None = None


@dataclass
class Job:
    """One output to write: which input, which style, where."""

    src: Path
    kind: str  # "image" or "video"
    label: str
    style: Style
    out: Path


class OutputExistsError(FaststError):
    """An output file exists and replacing it was not asked for."""


def safe_label(label: str) -> str:
    """A style name as it may appear in a file name."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", label).strip("-") or "style"


def blend_weight(spec: str) -> tuple[str, float]:
    """NAME=W's name and weight; FaststError (quoting the spec) unless W is a finite number ≥ 0."""
    name, _, weight = spec.rpartition("=")
    try:
        w = float(weight)
    except ValueError:
        raise FaststError(f"style {spec}: the weight '{weight}' is not a number") from None
    if not (math.isfinite(w) and w >= 0):
        raise FaststError(f"style {spec}: the weight must be a finite number ≥ 0, got {weight}")
    return name, w


def parse_styles(model: Any, specs: list[str], all_styles: bool = False) -> list[tuple[str, Style]]:
    """[(label, style)] from style specs: each plain NAME|INDEX is one output, all NAME=W entries
    together one blend (weights normalised); `all_styles`: one output per style of the model. A NAME
    is a style (a group of rows trained at several style sizes: {NAME: 1}, its rows chosen by the
    stroke) or one row (its index). FaststError on a bad weight or name (naming the styles)."""
    from ..controls import groups, resolve

    rows = model.styles
    by_group = groups(rows)

    def one(name: str | int) -> tuple[str, Style]:
        try:
            group, row = resolve(rows, name)
        except FaststError as e:
            raise FaststError(str(e), getattr(model, "path", None)) from None
        if row is None and len(by_group[group]) == 1:
            row = by_group[group][0]
        return (safe_label(rows[row].name), row) if row is not None else (safe_label(group), {group: 1.0})

    if all_styles:
        if specs:
            raise FaststError("give either a list of styles or all styles, not both")
        return [one(g) for g in by_group]
    if not specs:
        return [one(next(iter(by_group), 0))]
    jobs: list[tuple[str, Style]] = []
    blend: dict[str, float] = {}
    for spec in specs:
        if "=" in spec:
            name, w = blend_weight(spec)
            label, style = one(name)
            key = next(iter(style)) if isinstance(style, dict) else rows[style].name
            blend[key] = blend.get(key, 0.0) + w
        else:
            job = one(spec)
            if job not in jobs:
                jobs.append(job)
    if blend:
        top = max(blend.values())
        if top <= 0:
            raise FaststError("blend weights are all zero; give at least one style a positive weight")
        blend = {n: w / top for n, w in blend.items()}  # first by the largest: 1e308 + 1e308 would overflow
        total = sum(blend.values())
        blend = {n: w / total for n, w in blend.items()}
        label = "+".join(f"{safe_label(n)}{round(100 * w)}" for n, w in blend.items() if w > 0)
        jobs.append((label, blend))
    return jobs


def find_inputs(paths: list[str | os.PathLike]) -> list[Input]:
    """Every image and video among `paths`, folders searched recursively, in order; FaststError for
    anything missing or of an unsupported kind."""
    found: list[Input] = []
    for text in paths:
        path = Path(text)
        if not path.exists():
            raise FaststError("no such file or folder", path)
        if path.is_dir():
            files = find_files(path, IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
            if not files:
                raise FaststError("no images or videos in this folder", path)
            found += [Input(f, "video" if f.suffix.lower() in VIDEO_EXTENSIONS else "image", path) for f in files]
            continue
        suffix = path.suffix.lower()
        if suffix in VIDEO_EXTENSIONS:
            found.append(Input(path, "video"))
        elif suffix in IMAGE_EXTENSIONS:
            found.append(Input(path, "image"))
        elif suffix in MODEL_SUFFIXES:
            raise FaststError("a model file can only be the first argument", path)
        else:
            raise FaststError(f"unsupported input type '{suffix or path.name}' (images: "
                              f"{' '.join(IMAGE_EXTENSIONS)}; videos: {' '.join(VIDEO_EXTENSIONS)})", path)
    return found


def _default_suffix(src: Path, kind: str) -> str:
    if kind == "video":
        return output_suffix(src)
    return src.suffix.lower() if src.suffix.lower() in IMAGE_OUTPUT_SUFFIXES else ".png"


def _single_target(out: Path, kind: str) -> Path:
    """`out` as the one output file of a run: FaststError if it cannot hold a `kind` or has no folder."""
    ok = tuple(OUTPUT_FORMATS) if kind == "video" else IMAGE_OUTPUT_SUFFIXES
    if out.suffix.lower() not in ok:
        raise FaststError(f"{'a video' if kind == 'video' else 'an image'} output must end in {', '.join(ok)}", out)
    check_writable_folder(out.parent)
    return out


def plan(inputs: list[Input], styles: list[tuple[str, Style]], output: str | os.PathLike | None,
         overwrite: bool = False) -> tuple[list[Job], list[Path]]:
    """Decide every output path and check them all: (jobs, folders to create). `output` is one file
    (one input, one style) or a folder; None writes beside each input (a folder's outputs go to a
    sibling <folder>_stylized)."""
    n = len(inputs) * len(styles)
    several = n > 1 or any(i.folder is not None for i in inputs)
    out = Path(output) if output else None
    single_file = out is not None and not several and not out.is_dir() and out.suffix != ""
    if out is not None and several and not out.is_dir():
        if out.suffix.lower() in IMAGE_OUTPUT_SUFFIXES + tuple(OUTPUT_FORMATS) + (".avi", ".webm"):
            raise FaststError(f"there are {n} outputs, so OUT must be a folder, not a file name", out)
        if out.exists():
            raise FaststError("OUT must be a folder when there are several outputs", out)
    jobs: list[Job] = []
    folders: set[Path] = set()
    for item in inputs:
        src, kind, folder = item.path, item.kind, item.folder
        for label, style in styles:
            if single_file:
                assert out is not None
                target = _single_target(out, kind)
            else:
                base = out if out is not None else (folder.parent / f"{folder.name}_stylized" if folder else src.parent)
                rel = src.parent.relative_to(folder) if folder is not None else Path()
                target = base / rel / f"{src.stem}_{label}{_default_suffix(src, kind)}"
                folders.add(target.parent)
            jobs.append(Job(src=src, kind=kind, label=label, style=style, out=target))
    _check_outputs(jobs, inputs, overwrite)
    _check_folders(folders)
    return jobs, sorted(folders)


def _check_outputs(jobs: list[Job], inputs: list[Input], overwrite: bool) -> None:
    """No output is an input (also through a symlink or hard link), lies inside an input folder (it
    would be read as an input next time) or is another job's output; no output name is too long;
    existing outputs only with `overwrite`; none is a folder."""
    for job in jobs:
        check_name_length(job.out)
    check_not_inputs([j.out for j in jobs], [i.path for i in inputs], {i.folder for i in inputs if i.folder})
    seen: dict[str, Job] = {}
    for job in jobs:
        real = os.path.realpath(job.out)
        if real in seen and os.path.realpath(seen[real].src) == os.path.realpath(job.src):
            raise FaststError("this input is given twice (or inside a folder also given)", job.src)
        if real in seen:
            raise FaststError(f"two outputs would have the same name ({seen[real].src} and {job.src})", job.out)
        seen[real] = job
        if job.out.exists() and not overwrite:
            raise OutputExistsError("output exists", job.out)
        if job.out.is_dir():
            raise FaststError("output path is a folder", job.out)


def _check_folders(folders: set[Path]) -> None:
    """Every output folder exists or can be created, and takes files (a read-only one fails here, not
    after the work)."""
    for d in folders:
        p = d
        while not p.exists():
            p = p.parent
        if not p.is_dir():
            raise FaststError("cannot create the output folder: a file is in the way", p)
        check_writable_folder(d, create=True)


def measure_inputs(jobs: list[Job], max_size: int | None = None) -> dict[Path, tuple[int, int, int]]:
    """{input: (width, height, frames)} as the network will see it (after downscaling to `max_size`),
    reading every input once, so a corrupt or too small file fails the run before anything is written."""
    sizes: dict[Path, tuple[int, int, int]] = {}
    for src in dict.fromkeys(job.src for job in jobs if job.kind == "image"):
        w0, h0 = w, h = load_pil(src).size
        if max_size and max(w, h) > max_size:
            w, h = round(w * max_size / max(w, h)), round(h * max_size / max(w, h))
        if min(w, h) < MIN_SIDE:
            scaled = f" downscaled to {w}x{h} by --max-size {max_size}" if (w, h) != (w0, h0) else ""
            raise FaststError(f"image too small to stylize ({w0}x{h0}{scaled}; need at least {MIN_SIDE} px a side)",
                              src)
        sizes[src] = (w, h, 1)
    for src in dict.fromkeys(job.src for job in jobs if job.kind == "video"):
        info = probe_video(src)
        w, h = output_size(info.width, info.height, max_size)
        if min(w, h) < MIN_SIDE:
            scaled = f" downscaled to {max_size} px" if max_size else ""
            raise FaststError(f"video too small to stylize ({w}x{h}{scaled}; need at least {MIN_SIDE} px a side)", src)
        sizes[src] = (w, h, info.frames)
    return sizes


def network_pixels(jobs: list[Job], sizes: dict[Path, tuple[int, int, int]]) -> list[int]:
    """The pixel count of every network input the jobs make (one per image and style, one per video
    frame and style): what the backend choice weighs."""
    pixels: list[int] = []
    for job in jobs:
        w, h, frames = sizes[job.src]
        pixels += [w * h] * frames
    return pixels
