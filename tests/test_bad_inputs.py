"""Every command against a corpus of bad inputs, as a hostile user would run them: crafted model files,
checkpoints and pickles, bad options, outputs that would replace inputs, full and read-only disks
(private tmpfs mounts), damaged and mislabelled media, signals. Each case runs the real CLI
(`python -m fastst|gatys ...`, forked from a warm interpreter: tests/cli_fork.py) in a fresh copy of
the corpus and must end with exit 2 and exactly one stderr line naming the problem, no traceback,
every input byte-identical and nothing new beside the outputs it is allowed to write."""
from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from cli_fork import CliRunner, Result
from conftest import synthetic_image, write_png, write_training_inputs, write_video

REPO = Path(__file__).resolve().parents[1]
# A tiny training run: 4 photos, batch 2 (one pass over the data = 2 steps), 32 px crops, width 4.
TRAIN = ("train --style style.png --data photos --out out.fst --steps 1 --image-size 32 --batch-size 2 --width 4 "
         "--checkpoint-every 1 --preview-every 1")


# ------------------------------------------------------------------------------------------------ corpus

def _write_video(path: Path, frames: int = 6, width: int = 32, height: int = 32) -> Path:
    rng = np.random.default_rng(0)
    return write_video(path, (rng.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in range(frames)))


def _noise_png(path: Path, h: int, w: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, cli: CliRunner) -> Path:
    """Good inputs every case starts from: style images, 4 photos, a 48 px photo, a video, a 2-style model
    trained here by the CLI (model.fst) and its last checkpoint (run.ckpt), a fast_neural_style .pth."""
    base = tmp_path_factory.mktemp("corpus")
    write_training_inputs(base)
    write_png(base / "style2.png", synthetic_image(40, 56, seed=8))
    write_png(base / "photo.png", synthetic_image(48, 48, seed=5))
    _write_video(base / "clip.mp4")
    r = cli.run("fastst", shlex.split(TRAIN.replace("--steps 1", "--steps 2")) + ["--style", "b=style2.png"], cwd=base)
    assert r.rc == 0, r.stderr[-3000:]
    shutil.copy(base / "out_logs" / "checkpoints" / "last.ckpt", base / "run.ckpt")
    (base / "out.fst").rename(base / "model.fst")
    shutil.rmtree(base / "out_logs")
    torch.save(_pth_state(), base / "peer.pth")
    return base


def _pth_state() -> dict[str, torch.Tensor]:
    """A state dict with pytorch/examples fast_neural_style's names and shapes (random values)."""
    g = torch.Generator().manual_seed(0)
    shapes = {"conv1": (32, 3, 9), "conv2": (64, 32, 3), "conv3": (128, 64, 3), "deconv1": (64, 128, 3),
              "deconv2": (32, 64, 3), "deconv3": (3, 32, 9)}
    shapes.update({f"res{i}.conv{j}": (128, 128, 3) for i in range(1, 6) for j in (1, 2)})
    state: dict[str, torch.Tensor] = {}
    for name, (co, ci, k) in shapes.items():
        state[f"{name}.conv2d.weight"] = torch.randn(co, ci, k, k, generator=g) * 0.05
        state[f"{name}.conv2d.bias"] = torch.zeros(co)
    norms = {"in1": 32, "in2": 64, "in3": 128, "in4": 64, "in5": 32}
    norms.update({f"res{i}.in{j}": 128 for i in range(1, 6) for j in (1, 2)})
    for name, c in norms.items():
        state[f"{name}.weight"], state[f"{name}.bias"] = torch.ones(c), torch.zeros(c)
    return state


# ----------------------------------------------------------------------------------- crafted model files

def _blob(corpus: Path) -> dict[str, Any]:
    return torch.load(corpus / "model.fst", map_location="cpu", weights_only=True)


def _ckpt(corpus: Path) -> dict[str, Any]:
    return torch.load(corpus / "run.ckpt", map_location="cpu", weights_only=True)


def _first_weight(state: dict[str, Any], prefix: str = "") -> str:
    return next(k for k in state if k.startswith(prefix) and k.endswith("conv.weight"))


def _m(fn: Callable[[dict[str, Any]], Any]) -> Callable[[Path, Path], bytes]:
    """A crafted model file: the good model's dict edited in place by `fn`."""
    def make(corpus: Path, _: Path) -> bytes:
        blob = _blob(corpus)
        fn(blob)  # edits in place
        buf = io.BytesIO()
        torch.save(blob, buf)
        return buf.getvalue()
    return make


def _c(fn: Callable[[dict[str, Any]], Any]) -> Callable[[Path, Path], bytes]:
    """A crafted checkpoint: the good checkpoint's dict changed by `fn`."""
    def make(corpus: Path, _: Path) -> bytes:
        blob = _ckpt(corpus)
        fn(blob)
        buf = io.BytesIO()
        torch.save(blob, buf)
        return buf.getvalue()
    return make


def _p(fn: Callable[[dict[str, Any]], Any]) -> Callable[[Path, Path], bytes]:
    """A crafted .pth: the fast_neural_style state dict changed by `fn`."""
    def make(corpus: Path, _: Path) -> bytes:
        state = _pth_state()
        fn(state)
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()
    return make


def _set(d: dict[str, Any], path: str, value: Any) -> None:
    *head, last = path.split(".")
    for k in head:
        d = d[k]
    d[last] = value


def _huge_width(blob: dict[str, Any]) -> None:
    """A few-KB file declaring a network of width 10^6 (72 TB of weights if built)."""
    blob["architecture"]["width"] = 10 ** 6
    blob["state_dict"] = {k: v[:1].clone() if v.dim() else v for k, v in list(blob["state_dict"].items())[:3]}


def _weight(fn: Callable[[torch.Tensor], Any], prefix: str = "") -> Callable[[dict[str, Any]], None]:
    """An edit replacing the first conv weight (under `prefix`) of a dict's state_dict by fn(weight)."""
    def edit(blob: dict[str, Any]) -> None:
        state = blob["state_dict"] if "state_dict" in blob else blob
        k = _first_weight(state, prefix)
        state[k] = fn(state[k])
    return edit


def _drop_weight(prefix: str = "") -> Callable[[dict[str, Any]], None]:
    def edit(blob: dict[str, Any]) -> None:
        state = blob["state_dict"]
        state.pop(_first_weight(state, prefix))
    return edit


def _nan(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = float("nan")
    return t


class _Exec:
    """A pickle that would run code when unpickled without weights_only (it must not)."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _pickle_exec(corpus: Path, _: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": "fastst-model", "payload": _Exec()}, buf)
    return buf.getvalue()


def _truncated(name: str, fraction: float = 0.6) -> Callable[[Path, Path], bytes]:
    def make(corpus: Path, _: Path) -> bytes:
        data = (corpus / name).read_bytes()
        return data[: int(len(data) * fraction)]
    return make


MODELS: dict[str, Callable[[Path, Path], bytes]] = {
    "text-h": lambda c, d: b"hello, this is not a model\n",
    "text-t": lambda c, d: b"this is text\n",
    "empty": lambda c, d: b"",
    "random-bytes": lambda c, d: np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "truncated": _truncated("model.fst"),
    "pickle-exec": _pickle_exec,
    "format-only": _m(lambda b: [b.pop(k) for k in list(b) if k != "format"]),
    "no-architecture": _m(lambda b: b.pop("architecture")),
    "no-state-dict": _m(lambda b: b.pop("state_dict")),
    "no-styles": _m(lambda b: b.pop("styles")),
    "architecture-list": _m(lambda b: _set(b, "architecture", [1, 2])),
    "num-styles-text": _m(lambda b: _set(b, "architecture.num_styles", "two")),
    "num-styles-zero": _m(lambda b: _set(b, "architecture.num_styles", 0)),
    "num-styles-huge": _m(lambda b: _set(b, "architecture.num_styles", 10 ** 9)),
    "width-huge": _m(_huge_width),
    # every size within its bound, together 2·10^10 weights (78 GB): refused before the network is built
    "weights-too-many": _m(lambda b: b["architecture"].update(width=1024, residual_blocks=64)),
    "width-float": _m(lambda b: _set(b, "architecture.width", 4.5)),
    "blocks-huge": _m(lambda b: _set(b, "architecture.residual_blocks", 10 ** 6)),
    "blocks-negative": _m(lambda b: _set(b, "architecture.residual_blocks", -1)),
    "output-unknown": _m(lambda b: _set(b, "architecture.output", "tanh")),
    "version-text": _m(lambda b: _set(b, "format_version", "1")),
    "version-newer": _m(lambda b: _set(b, "format_version", 99)),
    "styles-short": _m(lambda b: _set(b, "styles", b["styles"][:1])),
    "styles-long": _m(lambda b: _set(b, "styles", b["styles"] + b["styles"][:1])),
    "styles-text": _m(lambda b: _set(b, "styles", "ab")),
    "style-entry-text": _m(lambda b: _set(b, "styles", ["a", "b"])),
    "style-name-number": _m(lambda b: _set(b, "styles", [{"name": 5}, {"name": 6}])),
    "style-names-duplicate": _m(lambda b: _set(b, "styles", [{"name": "a"}, {"name": "a"}])),
    "thumbnail-text": _m(lambda b: b["styles"][0].update(thumbnail="x")),
    "thumbnail-shape": _m(lambda b: b["styles"][0].update(thumbnail=torch.zeros(5, 2, dtype=torch.uint8))),
    "default-strength-nan": _m(lambda b: _set(b, "default_strength", float("nan"))),
    "default-strength-huge": _m(lambda b: _set(b, "default_strength", 1e9)),
    "style-kind-unknown": _m(lambda b: b["styles"][0].update(kind="sepia")),
    "state-dict-list": _m(lambda b: _set(b, "state_dict", [1, 2, 3])),
    "state-value-text": _m(_weight(lambda w: "x")),
    "state-wrong-shape": _m(_weight(lambda w: torch.zeros(2, 2))),
    "state-missing-key": _m(_drop_weight()),
    "state-extra-key": _m(lambda b: b["state_dict"].update({"extra.weight": torch.zeros(3)})),
    "state-int-weights": _m(_weight(lambda w: w.long())),
    "state-nan": _m(_weight(_nan)),
    "state-inf": _m(_weight(lambda w: torch.full_like(w, float("inf")))),
    "config-list": _m(lambda b: _set(b, "config", [1])),
}

CHECKPOINTS: dict[str, Callable[[Path, Path], bytes]] = {
    "ckpt-truncated": _truncated("run.ckpt"),
    "ckpt-no-state": _c(lambda b: b.pop("state_dict")),
    "ckpt-no-fastst": _c(lambda b: b.pop("fastst")),
    "ckpt-state-list": _c(lambda b: _set(b, "state_dict", [1])),
    "ckpt-state-value-text": _c(_weight(lambda w: "x", "net.")),
    "ckpt-state-wrong-shape": _c(_weight(lambda w: torch.zeros(3), "net.")),
    "ckpt-state-missing": _c(_drop_weight("net.")),
    "ckpt-styles-text": _c(lambda b: _set(b, "fastst.styles", 5)),
    "ckpt-styles-short": _c(lambda b: _set(b, "fastst.styles", b["fastst"]["styles"][:1])),
    "ckpt-config-list": _c(lambda b: _set(b, "fastst.config", [1])),
    "ckpt-width-huge": _c(lambda b: _set(b, "fastst.config.width", 10 ** 6)),
    "ckpt-step-text": _c(lambda b: _set(b, "global_step", "ten")),
    "ckpt-nan": _c(_weight(_nan, "net.")),
}

PTHS: dict[str, Callable[[Path, Path], bytes]] = {
    "pth-value-text": _p(lambda s: s.update({"conv1.conv2d.bias": "x"})),
    "pth-value-list": _p(lambda s: s.update({"in1.weight": [1.0] * 32})),
    "pth-wrong-shape": _p(lambda s: s.update({"conv2.conv2d.weight": torch.zeros(64, 32, 5, 5)})),
    "pth-missing-key": _p(lambda s: s.pop("res3.conv1.conv2d.weight")),
    "pth-nan": _p(lambda s: s.update({"conv1.conv2d.weight": torch.full((32, 3, 9, 9), float("nan"))})),
    "pth-tensor": lambda c, d: _save(torch.zeros(3)),
    "pth-truncated": _truncated("peer.pth", 0.5),
    # one stored value expanded (stride 0) to 2.4·10^9: a 2 KB file that would need terabytes to check or build
    "pth-expanded-bomb": _p(lambda s: s.update({"conv1.conv2d.weight": torch.zeros(1).expand(10 ** 7, 3, 9, 9)})),
    "pth-width-huge": _p(lambda s: s.update({"conv1.conv2d.weight": torch.zeros(2000, 3, 9, 9)})),
}


def _save(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- the cases

@dataclass
class Case:
    """One command line and what must come of it."""

    id: str
    prog: str  # fastst or gatys
    argv: str  # shell words, run in a fresh copy of the corpus
    needle: str | None = None  # in the one stderr line
    rc: int = 2
    files: dict[str, Callable[[Path, Path], bytes]] = field(default_factory=dict)  # crafted inputs to write first
    setup: Callable[[Path], None] | None = None
    outputs: tuple[str, ...] = ()  # glob patterns of files the case may create
    mounts: tuple[dict[str, Any], ...] = ()  # private tmpfs mounts (relative paths): {"path", "size", "ro"}
    timeout: float = 240


def _bad_photos(d: Path) -> None:
    """A 1×1 PNG and a truncated JPEG first in the data folder (their headers parse; their pixels do not do)."""
    Image.new("RGB", (1, 1), (9, 9, 9)).save(d / "photos" / "a_tiny.png")
    buf = io.BytesIO()
    Image.open(d / "photo.png").convert("RGB").save(buf, format="JPEG")
    (d / "photos" / "b_truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])


def _cases() -> list[Case]:
    cases: list[Case] = []
    for name, make in MODELS.items():
        cases.append(Case(f"styles-{name}", "fastst", "styles bad.fst", "bad.fst", files={"bad.fst": make}))
    for name in ("text-h", "no-architecture", "styles-short", "width-huge", "state-nan", "truncated"):
        cases.append(Case(f"infer-{name}", "fastst", "infer bad.fst photo.png -o out.png", "bad.fst",
                          files={"bad.fst": MODELS[name]}))
    for name in ("styles-short", "state-nan", "width-huge"):
        cases.append(Case(f"export-{name}", "fastst", "export bad.fst --onnx out.onnx --no-verify", "bad.fst",
                          files={"bad.fst": MODELS[name]}))
    for name, make in CHECKPOINTS.items():
        cases.append(Case(f"convert-{name}", "fastst", "convert bad.ckpt -o out.fst", "bad.ckpt", files={"bad.ckpt": make}))
    for name in ("ckpt-truncated", "ckpt-no-state", "ckpt-state-wrong-shape", "ckpt-width-huge", "ckpt-nan"):
        cases.append(Case(f"resume-{name}", "fastst", TRAIN + " --style b=style2.png --resume bad.ckpt --steps 3",
                          "bad.ckpt", files={"bad.ckpt": CHECKPOINTS[name]}))
    for name, make in PTHS.items():
        cases.append(Case(f"convert-{name}", "fastst", "convert bad.pth -o out.fst", "bad.pth", files={"bad.pth": make}))
    cases += [
        Case("styles-a-folder", "fastst", "styles photos", "photos"),
        Case("styles-checkpoint", "fastst", "styles run.ckpt", "convert it"),
        Case("styles-good-model", "fastst", "styles model.fst", rc=0),  # the corpus' model itself is fine
        Case("convert-good-checkpoint", "fastst", "convert run.ckpt -o out.fst", rc=0, outputs=("out.fst",)),
        Case("convert-good-pth", "fastst", "convert peer.pth -o out.fst", rc=0, outputs=("out.fst",)),
        Case("resume-other-styles", "fastst", TRAIN + " --resume run.ckpt --steps 3", "run.ckpt"),
        # outputs that are inputs
        Case("train-init-is-out", "fastst", TRAIN.replace("out.fst", "model.fst") + " --init model.fst", "model.fst"),
        Case("train-style-is-out", "fastst", TRAIN.replace("--style style.png", "--style st.fst").replace("out.fst", "st.fst"),
             "st.fst", setup=lambda d: shutil.copy(d / "style.png", d / "st.fst")),
        Case("train-resume-is-out", "fastst", TRAIN.replace("out.fst", "run.fst") + " --style b=style2.png --resume run.fst "
             "--steps 3", "run.fst", setup=lambda d: shutil.copy(d / "run.ckpt", d / "run.fst")),
        Case("train-logs-in-data", "fastst", TRAIN + " --log-dir photos/logs", "photos"),
        Case("convert-onto-itself", "fastst", "convert run.fst -o run.fst", "run.fst",
             setup=lambda d: shutil.copy(d / "run.ckpt", d / "run.fst")),
        Case("infer-out-is-input-symlink", "fastst", "infer model.fst photo.png -o link.png", "link.png",
             setup=lambda d: os.symlink("photo.png", d / "link.png")),
        Case("export-onto-model", "fastst", "export model.fst --onnx model.fst", "model.fst"),
        Case("infer-out-is-input-hardlink", "fastst", "infer model.fst photo.png -o hard.png --overwrite", "hard.png",
             setup=lambda d: os.link(d / "photo.png", d / "hard.png")),
        Case("infer-refine-onto-style-image", "fastst", "infer model.fst photo.png --refine 1 --style style "
             "--style-image style.png -o style.png --overwrite", "style.png"),
        Case("infer-newline-in-name", "fastst", "infer model.fst 'bad\nname.png' -o out.png", "bad\\nname.png",
             setup=lambda d: (d / "bad\nname.png").write_bytes(b"not a picture")),
        Case("infer-batch-huge", "fastst", "infer model.fst clip.mp4 -o out.mp4 --batch-size 100000", "--batch-size"),
        Case("infer-input-twice", "fastst", "infer model.fst photo.png photo.png -o outdir",
             "photo.png: this input is given twice"),
        Case("infer-onto-model", "fastst", "infer model.fst photo.png -o m.png --overwrite", "m.png",
             setup=lambda d: os.link(d / "model.fst", d / "m.png")),
        Case("gatys-stylize-existing-output", "gatys", "stylize photo.png style.png -o old.png --size 32 --iterations 2",
             "--overwrite", setup=lambda d: shutil.copy(d / "style2.png", d / "old.png")),
        Case("gatys-stylize-existing-log", "gatys", "stylize photo.png style.png -o new.png --size 32 --iterations 2",
             "--overwrite", setup=lambda d: (d / "new.csv").write_text("evaluation,total\n1,1\n")),
        Case("gatys-sweep-existing-output", "gatys", "sweep photo.png style.png --out sweep --size 32 --iterations 2",
             "--overwrite", setup=lambda d: (d / "sweep").mkdir() or (d / "sweep" / "summary.csv").write_text("run\n")),
        # training options checked before the first step
        *[Case(f"train-{opt.strip('-').replace(' ', '-')}", "fastst", f"{TRAIN} {opt}", needle) for opt, needle in [
            ("--lr -1", "--lr"), ("--lr nan", "--lr"), ("--lr inf", "--lr"), ("--style-size -5", "--style-size"),
            ("--style-size 0", "--style-size"), ("--workers -1", "--workers"), ("--seed -1", "--seed"),
            ("--content-layers ,", "--content-layers"), ("--style-layers ,", "--style-layers"),
            ("--style-layers relu9_9", "relu9_9"), ("--precision nope", "nope"), ("--accelerator nope", "nope"),
            ("--strategy nope", "nope"), ("--devices 0", "--devices"), ("--devices -1", "--devices"),
            ("--accelerator gpu", "gpu"), ("--num-nodes 0", "--num-nodes"),
            ("--content-weight nan", "--content-weight"), ("--style-weight inf", "--style-weight"),
            ("--tv-weight -1", "--tv-weight"), ("--crop-scale nan 1", "crop scale"), ("--steps 0", "--steps"),
            ("--batch-size 0", "--batch-size"), ("--checkpoint-every 0", "--checkpoint-every"),
            ("--preview-every -1", "--preview-every"), ("--image-size 8", "--image-size"), ("--backbone nope", "nope"),
            ("--objective gatys --image-size 0", "style size"), ("--exclude nope.txt", "nope.txt: no such --exclude"),
            ("--exclude photos", "photos: is a folder"), ("--exclude style.png", "not a text file"),
            ("--workers 100000", "--workers must be at most"),
        ]],
        Case("train-val-photo-too-thin", "fastst", TRAIN + " --val-data thin", "thin",
             setup=lambda d: (d / "thin").mkdir() or _noise_png(d / "thin" / "sliver.png", 2, 200)),
        Case("train-bad-photos", "fastst", TRAIN, "skipped", rc=0, outputs=("out.fst", "out_logs/**"),
             setup=_bad_photos),
        Case("train-nan-loss", "fastst", TRAIN.replace("--steps 1", "--steps 4") + " --lr 1e30", "the loss became nan",
             outputs=("out_logs/**",)),
        # other commands
        Case("export-opset-999", "fastst", "export model.fst --onnx out.onnx --opset 999", "opset"),
        Case("infer-tile-1", "fastst", "infer model.fst photo.png -o out.png --tile 1", "tile"),
        Case("infer-huge-blend", "fastst", "infer model.fst photo.png -o out.png --style style=1e308 --style b=1e308",
             rc=0, outputs=("out.png",)),
        Case("infer-bad-output-type", "fastst", "infer model.fst photo.png -o out.txt", "an image output"),
        Case("infer-video-8px", "fastst", "infer model.fst tiny.mp4 -o out.mp4", "tiny.mp4",
             setup=lambda d: _write_video(d / "tiny.mp4", width=8, height=8)),
        Case("infer-jpeg-named-mp4", "fastst", "infer model.fst fake.mp4 -o out.mp4", "fake.mp4",
             setup=lambda d: Image.open(d / "photo.png").convert("RGB").save(d / "fake.mp4", format="JPEG")),
        Case("gatys-sweep-size-0", "gatys", "sweep photo.png style.png --out sweep --size 0 --iterations 2", "size"),
        Case("gatys-sweep-iterations-0", "gatys", "sweep photo.png style.png --out sweep --size 32 --iterations 0",
             "iterations"),
        # full and read-only disks (private tmpfs mounts)
        Case("disk-full-infer-image", "fastst", "infer model.fst noise.png -o disk/out.png", "disk/out.png",
             setup=lambda d: _noise_png(d / "noise.png", 64, 64), mounts=({"path": "disk", "size": "4k"},)),
        Case("disk-readonly-infer-image", "fastst", "infer model.fst photo.png -o disk/out.png", "disk",
             mounts=({"path": "disk", "ro": True},)),
        Case("disk-full-infer-video", "fastst", "infer model.fst clip.mp4 -o disk/out.mp4 -q", "disk/out.mp4",
             mounts=({"path": "disk", "size": "4k"},)),
        Case("disk-full-train-model", "fastst", TRAIN.replace("out.fst", "disk/m.fst") + " --log-dir logs", "disk/m.fst",
             outputs=("logs/**",), mounts=({"path": "disk", "size": "12k"},)),
        Case("disk-full-train-checkpoint", "fastst", TRAIN + " --log-dir disk/logs", "disk", outputs=("disk/logs/**",),
             mounts=({"path": "disk", "size": "64k"},)),
        Case("disk-readonly-train", "fastst", TRAIN.replace("out.fst", "disk/m.fst"), "disk",
             mounts=({"path": "disk", "ro": True},)),
        Case("disk-full-convert", "fastst", "convert run.ckpt -o disk/out.fst", "disk/out.fst",
             mounts=({"path": "disk", "size": "12k"},)),
        Case("disk-full-export", "fastst", "export model.fst --onnx disk/out.onnx --no-verify", "disk/out.onnx",
             mounts=({"path": "disk", "size": "12k"},)),
        Case("disk-full-gatys-log", "gatys", "stylize photo.png style.png -o out.png --log disk/run.csv --size 32 "
             "--iterations 40 --no-progress", "disk/run.csv", mounts=({"path": "disk", "size": "4k",
                                                                      "files": {"filler": "x" * 4000}},)),
        Case("disk-full-gatys-sweep", "gatys", "sweep photo.png style.png --out disk/sweep --size 32 --iterations 2 "
             "--no-progress", "disk/sweep", outputs=("disk/sweep/**",), mounts=({"path": "disk", "size": "16k"},)),
    ]
    return cases


CASES = _cases()


# -------------------------------------------------------------------------------------------- the checks

def _tree(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under root (symlinks as their target text)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            found[rel] = "link:" + os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return found


PROGRESS = re.compile(r"\d+%\||\[\d+:\d\d|\d+/\d+ \[|it/s|frames/s\]|^\s*$")  # tqdm bars and their redraws


def _error_lines(stderr: str) -> list[str]:
    """stderr's lines, progress bars (redrawn with carriage returns) and argparse's usage block left out."""
    lines, in_usage = [], False
    for line in re.split(r"[\r\n]", stderr):
        in_usage = line.startswith("usage: ") or (in_usage and line.startswith(" "))
        if line.strip() and not in_usage and not PROGRESS.search(line):
            lines.append(line)
    return lines


def problems(case: Case, result: Result, before: dict[str, str], after: dict[str, str],
             result_dir: Path = Path()) -> list[str]:
    """What is wrong with a case's outcome: [] when it behaved."""
    found = []
    err = result.stderr
    if "Traceback" in err:
        found.append("TRACEBACK: " + err.strip().splitlines()[-1][:200])
    if result.rc != case.rc:
        found.append(f"EXIT {result.rc}, expected {case.rc}")
    changed = sorted(k for k in before if k in after and before[k] != after[k])
    gone = sorted(k for k in before if k not in after)
    if changed or gone:
        found.append(f"INPUT CHANGED: {', '.join(changed + gone)}")
    new = sorted(k for k in after if k not in before
                 and not any(fnmatch(k, pat) or fnmatch(k, pat.rstrip("*").rstrip("/") + "/*") for pat in case.outputs))
    placed = {f"{m['path']}/{name}" for m in case.mounts for name in (m.get("files") or {})}
    new += sorted(k for k in result.mounted if k not in placed  # on the private mounts (a full disk's part files)
                  and not any(fnmatch(k, pat) or fnmatch(k, pat.rstrip("*").rstrip("/") + "/*") for pat in case.outputs))
    if new:
        found.append(f"LEFT BEHIND: {', '.join(new[:5])}{' …' if len(new) > 5 else ''}")
    created = [k for k in list(after) + result.mounted if k not in before]
    parts = [k for k in created if ".part" in Path(k).name and Path(k).name.startswith(".")]
    if parts:  # an atomic write's temporary file: the write was interrupted and not cleaned up
        found.append(f"PART FILE LEFT: {', '.join(parts[:3])}")
    for k in created:  # a model or checkpoint a run leaves must be whole
        if k in after and k.endswith((".fst", ".ckpt")):
            try:
                torch.load(result_dir / k, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001
                found.append(f"TRUNCATED: {k} ({type(e).__name__})")
    if "PWNED" in after:
        found.append("CODE RAN from a pickle")
    lines = _error_lines(err)
    raw = [line for line in lines if re.search(r"\b[A-Z]\w*Warning\b|warnings\.warn", line)]
    if raw:
        found.append(f"RAW WARNING: {raw[0][:200]}")
    if case.rc == 2:
        if len(lines) != 1:
            found.append(f"STDERR {len(lines)} lines: {' | '.join(x[:100] for x in lines[-4:])}")
        elif not re.match(rf"{case.prog}( \w+)?: error: ", lines[0]):  # "fastst infer: error:" from argparse
            found.append(f"STDERR not an error line: {lines[0][:200]}")
        if lines and case.needle and case.needle not in lines[-1]:
            found.append(f"MESSAGE lacks '{case.needle}': {lines[-1][:200]}")
    elif case.rc == 0:
        stray = [line for line in lines if "error" in line.lower()]
        if stray:
            found.append(f"STDERR noise: {' | '.join(x[:100] for x in stray[:3])}")
        if case.needle and case.needle not in err:
            found.append(f"STDERR lacks '{case.needle}'")
    return found


def run_case(case: Case, corpus: Path, work: Path, cli: CliRunner) -> tuple[Result, list[str]]:
    shutil.copytree(corpus, work, symlinks=True)
    for name, make in case.files.items():
        (work / name).write_bytes(make(corpus, work))
    if case.setup:
        case.setup(work)
    for m in case.mounts:
        (work / m["path"]).mkdir(exist_ok=True)
    before = _tree(work)
    mounts = [{**m, "path": str(work / m["path"])} for m in case.mounts]
    result = cli.run(case.prog, shlex.split(case.argv), cwd=work, timeout=case.timeout, mounts=mounts)
    if result.skipped:
        pytest.skip(f"private tmpfs mounts are not allowed here ({result.stderr.strip()})")
    result.mounted = [Path(p).relative_to(work).as_posix() for p in result.mounted]
    return result, problems(case, result, before, _tree(work), work)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, corpus: Path, tmp_path: Path, cli: CliRunner) -> None:
    result, found = run_case(case, corpus, tmp_path / "case", cli)
    assert not found, f"{case.prog} {case.argv}\n" + "\n".join(found) + f"\n--- stderr:\n{result.stderr[-1500:]}"


def test_sigterm_mid_video_keeps_the_old_output_and_leaves_no_part_file(corpus: Path, tmp_path: Path,
                                                                        cli: CliRunner) -> None:
    """`kill`, `timeout` and `docker stop` send SIGTERM: it must clean up as Ctrl-C does."""
    import signal

    work = tmp_path / "work"
    shutil.copytree(corpus, work)
    ramp = np.linspace(0, 255, 96, dtype=np.uint8)
    write_video(work / "long.mp4", (np.stack([np.roll(np.add.outer(ramp, ramp) // 2, i, 1)] * 3, -1).astype(np.uint8)
                                    for i in range(1500)))
    (work / "out.mp4").write_bytes(b"OLD")
    r = cli.run("fastst", shlex.split("infer model.fst long.mp4 -o out.mp4 --overwrite -q"), cwd=work,
                signal_when=".out.mp4.*.part.mp4", signal_number=signal.SIGTERM, signal_delay=0.3)
    assert r.rc == 128 + signal.SIGTERM, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == "fastst: terminated" and "Traceback" not in r.stderr
    assert (work / "out.mp4").read_bytes() == b"OLD"
    assert not [p.name for p in work.iterdir() if ".part" in p.name]
