"""Training speed of the fast stylizer: images/s of fastst's training step (transformer,
vgg16-caffe losses, backward, Adam, under Lightning's autocast for the precision) at 256 px, batch 4,
in fp32 and bf16, on the CPU and on CUDA when present. A script that prints figures, not a test.

    python benchmarks/train_speed.py                  # 256 px, batch 4, 5 timed steps per setting
    python benchmarks/train_speed.py --quick          # 64 px, batch 2, 1 timed step (smoke test)

On CPUs without hardware bf16 (no AMX / AVX512-BF16) autocast emulates bf16 and is much slower than
fp32, which is why fp32 is fastst's default there; that row is still measured, with fewer steps.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

import benchutil as bu  # noqa: E402 - also puts the repository on sys.path

PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}
COLUMNS = ("device", "precision", "default", "size", "batch", "width", "ms_step_median", "ms_step_min", "ms_step_max",
           "images_per_s", "steps", "machine")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--quick", action="store_true", help="64 px, batch 2, 1 timed step")
    p.add_argument("--size", type=int, default=None, help="crop size (default 256)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 4)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per setting (default 5; quick 1)")
    p.add_argument("--devices", default="auto", help="auto (cpu, plus cuda when present) or a list: cpu,cuda")
    p.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32, bf16, fp16 (fp16: CUDA only)")
    p.add_argument("--emulated-steps", type=int, default=None,
                   help="timed steps for bf16 on a CPU that emulates it (default 1: it is slow)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--width", type=int, default=32, help="the network's width (fastst train --width; default 32)")
    p.add_argument("--csv", default=None, help="write the figures as CSV here")
    args = p.parse_args(argv)
    size = args.size or (64 if args.quick else 256)
    batch = args.batch or (2 if args.quick else 4)
    steps = args.steps or (1 if args.quick else 5)
    if args.threads:
        torch.set_num_threads(args.threads)
    from fastst.hardware import cpu_has_fast_bf16
    from fastst.training import quiet_lightning, trainer_precision

    quiet_lightning()
    devices = (["cpu"] + (["cuda"] if torch.cuda.is_available() else [])) if args.devices == "auto" \
        else [d.strip() for d in args.devices.split(",")]
    if "cuda" in devices and not torch.cuda.is_available():
        p.error("--devices cuda: no CUDA GPU here")
    machine = bu.machine_line("cuda" if "cuda" in devices else "cpu")
    print(f"# {machine}")
    print(f"# fastst training step, {size} px crops of the sample photos, batch {batch}, width {args.width}, "
          "Adam; vgg16-caffe losses")
    print(f"{'device':6s} {'precision':10s} {'default':7s} {'ms/step median [min–max]':30s} {'images/s':>9s}")
    rows = []
    for device in devices:
        dev = torch.device(device)
        default = trainer_precision(dev.type)
        for name in [s.strip() for s in args.precisions.split(",") if s.strip()]:
            if name not in PRECISIONS:
                p.error(f"unknown precision {name!r} (fp32, bf16, fp16)")
            precision = PRECISIONS[name]
            if name == "fp16" and dev.type != "cuda":
                continue
            emulated = dev.type == "cpu" and name == "bf16" and not cpu_has_fast_bf16()
            n = (args.emulated_steps or 1) if emulated else steps
            step = bu.FaststTrainStep(size, batch, precision, dev, width=args.width)
            t = time.perf_counter()
            st = bu.time_calls(step, dev, warmup=0 if emulated else 1, min_iters=n, max_iters=n, min_seconds=0)
            del step
            ips = batch * 1e3 / st.median
            mark = "yes" if precision == default else ""
            note = " (bf16 emulated on this CPU)" if emulated else ""
            print(f"{device:6s} {name:10s} {mark:7s} {st.text('{:.0f}'):30s} {ips:9.2f}{note}", flush=True)
            print(f"  [{time.perf_counter() - t:.0f} s]", file=sys.stderr)
            rows.append(dict(device=device, precision=name, default=mark, size=size, batch=batch, width=args.width,
                             ms_step_median=st.median,
                             ms_step_min=st.min, ms_step_max=st.max, images_per_s=ips, steps=n, machine=machine))
    if args.csv:
        print(f"wrote {bu.write_csv(args.csv, rows, COLUMNS)}")


if __name__ == "__main__":
    main()
