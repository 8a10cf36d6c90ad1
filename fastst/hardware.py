"""What the machine can do fast: device choice, whether bf16 pays off on this CPU, and the one
precision policy that training, inference and per-image optimisation follow."""
from __future__ import annotations

import functools
import platform

import torch


@functools.cache
def cpu_flags() -> frozenset[str]:
    """CPU feature flags from /proc/cpuinfo (empty where unavailable)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AMX or AVX512-BF16); elsewhere bf16 is emulated
    and slower than fp32. Apple silicon reports no flags and stays on fp32."""
    flags = cpu_flags()
    return platform.machine() in ("x86_64", "AMD64") and bool({"amx_bf16", "avx512_bf16"} & flags)


DEVICES = ("auto", "cpu", "cuda", "mps")
TASKS = ("training", "inference", "optimization")


def default_precision(device: str | torch.device = "auto", task: str = "inference") -> str:
    """The precision that pays off for `task` on `device`: "bf16", "fp16" or "fp32".

    CPUs: bf16 where computed in hardware (AMX / AVX512-BF16: about 2x faster, visually equal),
    fp32 elsewhere (emulated bf16 is many times slower). CUDA: bf16 for training where the GPU
    supports it, else fp16; fp16 for inference; fp32 for per-image optimisation, whose L-BFGS line
    search reduced precision has not been measured to suit. Other devices (mps): fp32.
    `device` is a torch device or a Lightning accelerator name ("auto", "cpu", "gpu", "cuda", "mps").
    """
    if task not in TASKS:
        raise ValueError(f"unknown task '{task}'; choose one of {', '.join(TASKS)}")
    kind = device.type if isinstance(device, torch.device) else str(device).split(":")[0]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if kind in ("cuda", "gpu"):
        if task == "training":
            return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp16"
        return "fp16" if task == "inference" else "fp32"
    return "fp32"


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device that is not available is a user error."""
    from .errors import FaststError

    name = "auto" if name is None else str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise FaststError(f"unknown device '{name}'; choose one of {', '.join(DEVICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise FaststError("device cuda requested but no CUDA GPU is available to torch")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise FaststError("device mps requested but Apple's Metal backend is not available")
    return torch.device(name)
