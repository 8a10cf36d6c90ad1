"""Shared pieces of the benchmark scripts: timing with medians, the machine line, sample inputs,
CSV output and fastst's training step run outside Lightning (the step the Trainer would run)."""
from __future__ import annotations

import contextlib
import csv
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python benchmarks/x.py` from a checkout without an install
    sys.path.insert(0, str(REPO))

from fastst.allocator import keep_freed_memory  # noqa: E402

# As the fastst and gatys commands do; every benchmark times fastst and its peers in one process,
# so both sides run with the same allocator and the comparison stays like for like.
keep_freed_memory()

SAMPLES = REPO / "datasets" / "samples"
SAMPLE_STYLE = SAMPLES / "styles" / "starry_night.jpg"
SAMPLE_PHOTO = SAMPLES / "photos" / "skimage_chelsea.jpg"
# Larger photos, styles and videos beside the checkout: `../shared/data` by default, or the folder that
# FASTST_BENCH_DATA names. Benchmarks use it where it is there; tests never do.
DATA = Path(os.environ.get("FASTST_BENCH_DATA") or REPO.parent / "shared" / "data")


def shared_path(relative: str) -> Path | None:
    """`relative` inside the benchmark data folder (DATA) if it is there, else None."""
    path = DATA / relative
    return path if path.exists() else None


@dataclass
class Stats:
    """Median, min and max of repeated measurements, in the unit they were taken in."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        v = list(values)
        return cls(statistics.median(v), min(v), max(v), len(v))

    def scaled(self, f: Callable[[float], float]) -> Stats:
        """Apply a monotonic map (e.g. seconds -> images/s), keeping min/max the right way round."""
        a, b = f(self.min), f(self.max)
        return Stats(f(self.median), min(a, b), max(a, b), self.n)

    def text(self, fmt: str = "{:.1f}") -> str:
        if self.n <= 1:
            return fmt.format(self.median)
        return f"{fmt.format(self.median)} [{fmt.format(self.min)}–{fmt.format(self.max)}]"


def synchronize(device: torch.device | str) -> None:
    """Wait for queued device work so that host clocks measure it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_once(fn: Callable[[], Any], device: torch.device | str = "cpu") -> float:
    """Seconds one call of `fn` takes, device work included."""
    synchronize(device)
    t = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t


def time_calls(fn: Callable[[], Any], device: torch.device | str = "cpu", warmup: int = 3, min_iters: int = 5,
               max_iters: int = 200, min_seconds: float = 1.0,
               clock: Callable[[], float] = time.perf_counter) -> Stats:
    """Per-call milliseconds of `fn` after `warmup` calls: at least `min_iters` calls and `min_seconds`
    of calls, at most `max_iters`. CUDA work is timed with events, CPU work with `clock` (wall time;
    `time.process_time` gives this process's CPU time, which other load on the machine disturbs less)."""
    dev = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(dev)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_iters and (len(times) < min_iters or time.perf_counter() - start < min_seconds):
        if dev.type == "cuda":
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            fn()
            e1.record()
            e1.synchronize()
            times.append(e0.elapsed_time(e1))
        else:
            t = clock()
            fn()
            times.append((clock() - t) * 1e3)
    return Stats.of(times)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_kind() -> str:
    """The CPU's widest relevant instruction set, as the docs name CPU kinds: AMX, AVX512-BF16, AVX-512, AVX2."""
    from fastst.hardware import cpu_flags

    flags = cpu_flags()
    for flag, kind in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2")):
        if flag in flags:
            return kind
    return platform.machine()


def machine_line(device: torch.device | str = "cpu") -> str:
    """One line naming the hardware and software the figures were taken on, and the load on the machine
    (figures taken while other work runs are slower)."""
    from fastst.hardware import cpu_has_fast_bf16

    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    parts = [f"{cpu_name()} ({cpu_kind()}), {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
             f"hardware bf16 on CPU: {'yes' if cpu_has_fast_bf16() else 'no (emulated: fp32 is the CPU default)'}"
             f"{load}"]
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        parts.append(f"GPU {p.name} ({p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs), "
                     f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    return "; ".join(parts)


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Path:
    """Write rows (dicts) as CSV with the given columns, atomically."""
    from fastst.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return path


def sample_batch(size: int, batch: int, seed: int = 0) -> torch.Tensor:
    """(batch, 3, size, size) random-resized crops of the bundled sample photos, as training sees them."""
    from fastst.data import StyledCrops
    from fastst.images import find_images

    crops = StyledCrops(find_images(SAMPLES / "photos"), size, 1, seed)
    return torch.stack([crops[i][0] for i in range(batch)])


def precision_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast Lightning's precision plugin puts around a training step ('32-true' needs none)."""
    if precision in ("32-true", "32", "fp32"):
        return contextlib.nullcontext()
    if precision in ("bf16-mixed", "bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision in ("16-mixed", "fp16"):
        return torch.autocast(device.type, dtype=torch.float16)
    raise ValueError(f"unknown precision {precision!r}")


class FaststTrainStep:
    """fastst's training step (StyleTransferModule.losses, backward, Adam) on one fixed batch, under the
    autocast Lightning's precision setting applies; the Trainer's logging and data loading are left out."""

    def __init__(self, size: int = 256, batch: int = 4, precision: str = "32-true", device: str | torch.device = "cpu",
                 backbone: str = "vgg16-caffe", style: str | os.PathLike = SAMPLE_STYLE,
                 channels_last: bool = False, width: int | None = None) -> None:
        from fastst.training import StyleTransferModule, TrainConfig

        self.device = torch.device(device)
        self.precision, self.batch, self.size = precision, batch, size
        cfg = TrainConfig(image_size=size, batch_size=batch, backbone=backbone, width=width)
        torch.manual_seed(0)
        self.module = StyleTransferModule([str(style)], [Path(style).stem], cfg.to_dict()).to(self.device)
        self.module.setup("fit")
        if channels_last:
            self.module.net.to(memory_format=torch.channels_last)
            self.module.lossnet.to(memory_format=torch.channels_last)
        self.optimizer = self.module.configure_optimizers()
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "16-mixed" else None
        images = sample_batch(size, batch).to(self.device)
        self.images = images.contiguous(memory_format=torch.channels_last) if channels_last else images
        self.styles = torch.zeros(batch, dtype=torch.long, device=self.device)

    def __call__(self) -> float:
        """One optimisation step; returns the loss (a host sync, as Lightning's logging does)."""
        self.optimizer.zero_grad(set_to_none=True)
        with precision_context(self.device, self.precision):
            loss = self.module.losses(self.images, self.styles)["loss"]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return float(loss.detach())


def load_content(path: str | os.PathLike | None = None) -> torch.Tensor:
    """A (3, H, W) photo in [0, 1]: `path`, else the bundled sample photo."""
    from fastst.images import load_image

    return load_image(path or SAMPLE_PHOTO)


def square(image: torch.Tensor, size: int) -> torch.Tensor:
    """The centred square crop of a (3, H, W) image, resized to size x size."""
    from fastst.images import resize_exact

    h, w = image.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize_exact(image[..., top:top + side, left:left + side], size, size)
