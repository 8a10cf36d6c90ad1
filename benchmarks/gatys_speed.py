"""Gatys baseline speed: loss evaluations (forward + backward through the loss network) per second at
256 and 512 px in fp32 and with bf16 autocast, the fp32-scored loss each precision reaches, and the
wall time of 300 L-BFGS evaluations at 512 px. A script that prints figures, not a test.

    python benchmarks/gatys_speed.py                      # full: 256/512 px, 300 L-BFGS evaluations
    python benchmarks/gatys_speed.py --quick              # 128/256 px, 30 evaluations (a few minutes on 2 cores)

The photo and the painting: --content and --style, else skimage_chelsea.png and starry_night.jpg from the
benchmark data folder (../shared/data, or $FASTST_BENCH_DATA), else the bundled samples of the same two.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import benchutil as bu  # also puts the repository on sys.path
import gatys.optimize as go
from fastst.hardware import cpu_has_fast_bf16
from fastst.images import load_image, resize_long_side, save_image


def _images(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    content = Path(args.content) if args.content else \
        bu.shared_path("photos/misc/skimage_chelsea.png") or bu.SAMPLE_PHOTO
    style = Path(args.style) if args.style else bu.shared_path("styles/starry_night.jpg") or bu.SAMPLE_STYLE
    print(f"# content {content}, style {style}")
    return load_image(content), load_image(style)


def evals_per_second(content: torch.Tensor, style: torch.Tensor, size: int, bf16: bool, repeats: int) -> float:
    """Median rate of forward+backward evaluations of the default objective at `size`."""
    c = resize_long_side(content, size)
    s = resize_long_side(style, size)
    cl, sl = go.default_layers(go.DEFAULT_BACKBONE)
    net = go.loss_network(go.DEFAULT_BACKBONE, list(dict.fromkeys(cl + sl)))
    objective = go.Objective(net, c, [s], cl, sl, bf16=bf16)
    x = c.clone().requires_grad_(True)
    times = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        x.grad = None
        objective.terms(x)["total"].backward()
        if i:  # the first pass warms up kernels and allocations
            times.append(time.perf_counter() - t)
    return 1.0 / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes and budgets for a slow or shared CPU")
    p.add_argument("--content", default=None)
    p.add_argument("--style", default=None)
    p.add_argument("--sizes", default=None, help="sizes of the evals/s rows, comma-separated (default: 256,512; quick: 128,256)")
    p.add_argument("--repeats", type=int, default=None, help="timed evaluations per setting (median)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--skip-bf16", action="store_true", help="fp32 only (bf16 is emulated, very slow, without AVX-512 BF16/AMX)")
    p.add_argument("--force-bf16", action="store_true", help="run the bf16 L-BFGS quality comparison even where bf16 is emulated")
    p.add_argument("--budget", type=int, default=None, help="L-BFGS evaluations (default: 300, quick: 30)")
    p.add_argument("--skip-rates", action="store_true", help="only the L-BFGS runs")
    p.add_argument("--save", default=None, help="save the fp32 L-BFGS result to this image file")
    p.add_argument("--lbfgs-size", type=int, default=None, help="L-BFGS run size (default: the larger size)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = tuple(int(v) for v in args.sizes.split(",")) if args.sizes else (128, 256) if args.quick else (256, 512)
    repeats = args.repeats or (3 if args.quick else 5)
    budget = args.budget or (30 if args.quick else 300)
    content, style = _images(args)
    print(f"# {bu.machine_line()}")
    precisions = [False] if args.skip_bf16 else [False, True]
    print("size  precision  evals/s")
    for size in () if args.skip_rates else sizes:
        for bf16 in precisions:
            emulated = bf16 and not cpu_has_fast_bf16()
            if emulated and size > sizes[0] and not args.force_bf16:
                print(f"{size:4d}  bf16       skipped (emulated bf16; --force-bf16 runs it)", flush=True)
                continue
            rate = evals_per_second(content, style, size, bf16, 1 if emulated else repeats)
            print(f"{size:4d}  {'bf16' if bf16 else 'fp32':9s}  {rate:7.3f}", flush=True)
    size = args.lbfgs_size or sizes[-1]
    print(f"\nL-BFGS, {budget} evaluations at {size} px (fixed fp32 scorer on the result):")
    for bf16 in precisions:
        if bf16 and not cpu_has_fast_bf16() and not args.force_bf16:
            print("  bf16: skipped (no native bf16 on this CPU; see the evals/s above; --force-bf16 runs it)")
            continue
        r = go.stylize(content, [style], size=size, iterations=budget, device="cpu", bf16=bf16, progress=True)
        scored = go.score(content, [style], r.image)
        if args.save and not bf16:
            save_image(r.image, args.save)
        print(f"  {'bf16' if bf16 else 'fp32'}: {r.seconds:7.1f} s ({r.passes_per_second:.3f} evals/s); "
              f"own final loss {r.final['total']:.4g}; fp32-scored total {scored['total']:.4g}", flush=True)


if __name__ == "__main__":
    main()
