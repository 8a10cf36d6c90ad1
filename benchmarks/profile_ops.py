"""Where the CPU time goes: torch.profiler's top operators for `fastst.stylize` at its defaults and for
one training step, with the share spent copying memory (casts, layout changes, padding, pixel
(un)shuffles, concatenation), so that the next regression is visible. With --onednn it also counts
oneDNN's own reorders (plain <-> blocked layouts), which run inside the convolutions and which
torch.profiler cannot see.

    python benchmarks/profile_ops.py                          # infer 512² at the defaults + train step 256 px, batch 4
    python benchmarks/profile_ops.py --only infer --onednn    # + oneDNN's reorders, from ONEDNN_VERBOSE
    python benchmarks/profile_ops.py --only infer --layout plain   # the NCHW layout fastst ran in before

torch.profiler times operators by wall clock: other load on the machine inflates them (the load average
is printed), but the shares stay informative.
"""
from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

import benchutil as bu  # noqa: E402 - also puts the repository on sys.path

#: Operators that only move bytes: casts and layout changes (copy_), padding, pixel (un)shuffles,
#: concatenation. Their self time is the "copies" share the performance notes speak of.
COPY_OPS = frozenset({"aten::copy_", "aten::reflection_pad2d", "aten::replication_pad2d", "aten::constant_pad_nd",
                      "aten::pixel_shuffle", "aten::pixel_unshuffle", "aten::cat", "aten::index",
                      "aten::reflection_pad2d_backward", "aten::replication_pad2d_backward"})
CONV_OPS = ("conv", "mkldnn")


def category(name: str) -> str:
    if name in COPY_OPS:
        return "copies"
    if any(k in name for k in CONV_OPS):
        return "convolution"
    if "norm" in name:
        return "norm"
    return "other"


def summarize(prof: Any, per: int, title: str, limit: int) -> dict[str, float]:
    """The top `limit` operators by self CPU time (per image or step: divided by `per`), and the shares
    by category (returned, in %)."""
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\n## {title}: {total / 1e3 / per:.1f} ms of operator self time per run\n")
    print("| operator | category | self ms/run | share | calls/run |\n|---|---|---:|---:|---:|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:limit]:
        print(f"| {e.key} | {category(e.key)} | {e.self_cpu_time_total / 1e3 / per:.1f} | "
              f"{100 * e.self_cpu_time_total / total:.1f} % | {e.count / per:g} |")
    by = collections.Counter()
    calls = collections.Counter()
    for e in events:
        by[category(e.key)] += e.self_cpu_time_total
        calls[category(e.key)] += e.count
    print("\n" + ", ".join(f"{k} {100 * v / total:.1f} % ({calls[k] / per:g} calls)" for k, v in by.most_common()))
    return {k: 100 * v / total for k, v in by.items()}


def profiled(fn: Callable[[], Any], runs: int) -> Any:
    fn()
    fn()  # oneDNN picks and caches its kernels on the first calls
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            fn()
    return prof


def stylizer(args: argparse.Namespace):
    from fastst.inference.stylizer import Stylizer
    from fastst.modelfile import load_model

    layout = {"default": None, "plain": False, "channels-last": True}[args.layout]
    return Stylizer(load_model(args.model), device="cpu", precision=args.precision, channels_last=layout)


def infer_section(args: argparse.Namespace) -> None:
    from fastst.inference.stylizer import stylize

    runner = stylizer(args)
    x = torch.rand(1, 3, args.size, args.size)
    prof = profiled(lambda: stylize(runner, x), args.runs)
    layout = "channels-last" if runner.channels_last else "plain NCHW"
    shares = summarize(prof, args.runs, f"fastst.stylize {args.size}² ({runner.precision}, {layout}), per image",
                       args.limit)
    if args.onednn:
        hidden = onednn_section(args)  # the part of the convolutions' time that is oneDNN reordering activations
        copies = shares.get("copies", 0.0) + hidden * shares.get("convolution", 0.0)
        print(f"\nCopies including oneDNN's activation reorders: {copies:.1f} % of the profile "
              f"({100 * hidden:.1f} % of the convolutions' time is reordering)")


def floor_section(args: argparse.Namespace) -> None:
    """The convolutions alone: every conv one forward runs, recorded with its input and weight, then
    timed on its own in the same dtype and layout, beside a large matmul in that dtype. Their sum is
    what no implementation of this network in this precision can beat on this CPU."""
    import torch.nn.functional as F

    from fastst.inference.stylizer import stylize

    runner = stylizer(args)
    seen: list[tuple[torch.Tensor, torch.Tensor, Any, Any]] = []
    conv2d = F.conv2d

    def record(x, w, b=None, stride=1, *rest, **kw):
        seen.append((x.detach().clone(memory_format=torch.preserve_format), w.detach(), stride, rest[0] if rest else
                     kw.get("padding", 0)))
        return conv2d(x, w, b, stride, *rest, **kw)

    F.conv2d = record
    try:
        stylize(runner, torch.rand(1, 3, args.size, args.size))
    finally:
        F.conv2d = conv2d
    total_ms, macs = 0.0, 0
    with torch.no_grad():
        for x, w, stride, padding in seen:
            y = conv2d(x, w, None, stride, padding)
            total_ms += 1000 * min(bu.time_once(lambda: conv2d(x, w, None, stride, padding)) for _ in range(5))
            macs += y[0].numel() * w[0].numel()
        a = torch.randn(2048, 2048, dtype=seen[0][0].dtype)
        mm = min(bu.time_once(lambda: a @ a) for _ in range(5))
    print(f"\n## The floor: {len(seen)} convolutions alone, {args.size}² ({runner.precision})\n\n"
          f"{total_ms:.1f} ms per image, {macs / 1e9:.1f} G multiply-adds at {macs / total_ms / 1e6:.0f} GMAC/s; "
          f"a 2048² matmul in {seen[0][0].dtype} runs at {2048 ** 3 / mm / 1e9:.0f} GMAC/s on this CPU.")


def onednn_section(args: argparse.Namespace) -> float:
    """oneDNN's reorders and convolutions over one forward, from a child process run with ONEDNN_VERBOSE=1;
    returns the activation reorders' fraction of the oneDNN primitives' time."""
    cmd = [sys.executable, os.path.abspath(__file__), "--onednn-child", "--size", str(args.size),
           "--precision", args.precision, "--layout", args.layout] + (["--model", args.model] if args.model else [])
    out = subprocess.run(cmd, env={**os.environ, "ONEDNN_VERBOSE": "1"}, capture_output=True, text=True, check=True).stdout
    lines = out.split("=== measured ===", 1)[-1].splitlines()
    stats: dict[str, list[float]] = collections.defaultdict(list)
    for line in lines:
        f = line.split(",")
        if len(f) > 5 and f[0] == "onednn_verbose" and "exec" in f:
            kind = f[f.index("exec") + 2]
            if kind == "reorder":  # weights are 4-D too: activations have a batch of 1 and sizes above 16 px
                shape = f[-2].split("x")
                kind = "reorder (activation)" if len(shape) == 4 and shape[0] == "1" and int(shape[-1]) > 16 \
                    else "reorder (weights)"
            stats[kind].append(float(f[-1]))
    print("\n### oneDNN primitives in one forward (ONEDNN_VERBOSE; they run inside aten::mkldnn_convolution)\n")
    print("| primitive | count | ms |\n|---|---:|---:|")
    for kind, ms in sorted(stats.items(), key=lambda kv: -sum(kv[1])):
        print(f"| {kind} | {len(ms)} | {sum(ms):.1f} |")
    total = sum(sum(ms) for ms in stats.values())
    return sum(stats.get("reorder (activation)", [])) / total if total else 0.0


def onednn_child(args: argparse.Namespace) -> None:
    from fastst.inference.stylizer import stylize

    runner = stylizer(args)
    x = torch.rand(1, 3, args.size, args.size)
    stylize(runner, x)
    stylize(runner, x)
    print("=== measured ===", flush=True)
    stylize(runner, x)


def train_section(args: argparse.Namespace) -> None:
    from fastst.training import quiet_lightning, trainer_precision

    quiet_lightning()
    precision = trainer_precision("cpu")
    step = bu.FaststTrainStep(args.train_size, args.batch, precision, "cpu")
    prof = profiled(step, args.train_runs)
    summarize(prof, args.train_runs, f"training step {args.train_size} px, batch {args.batch} ({precision}), per step",
              args.limit)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--only", default="infer,train", help="infer, train or both (default)")
    p.add_argument("--size", type=int, default=512, help="inference image side (default 512)")
    p.add_argument("--precision", default="auto", help="inference precision: auto (default), fp32, bf16")
    p.add_argument("--layout", default="default", choices=("default", "plain", "channels-last"),
                   help="inference memory layout (default: the Stylizer's choice)")
    p.add_argument("--model", default=None, help="a .fst model (default: the bundled one)")
    p.add_argument("--runs", type=int, default=3, help="profiled inference runs (default 3)")
    p.add_argument("--train-size", type=int, default=256, help="training crop size (default 256)")
    p.add_argument("--batch", type=int, default=4, help="training batch (default 4)")
    p.add_argument("--train-runs", type=int, default=2, help="profiled training steps (default 2)")
    p.add_argument("--limit", type=int, default=15, help="operators listed (default 15)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--onednn", action="store_true", help="also count oneDNN's reorders (a child process)")
    p.add_argument("--onednn-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--floor", action="store_true", help="also time the network's convolutions alone: the least "
                   "any implementation of it in this precision needs here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.onednn_child:
        onednn_child(args)
        return
    print(f"# {bu.machine_line()}")
    only = {s.strip() for s in args.only.split(",")}
    if "infer" in only:
        infer_section(args)
        if args.floor:
            floor_section(args)
    if "train" in only:
        train_section(args)
    print(f"\n(load average at the end {os.getloadavg()[0]:.1f}; command: python benchmarks/profile_ops.py "
          f"{' '.join(sys.argv[1:] if argv is None else argv)})")


if __name__ == "__main__":
    main()
