"""What keeping freed memory in the heap (fastst.allocator.keep_freed_memory, which the fastst and
gatys commands apply) is worth: each workload runs in a fresh process with glibc's defaults
(FASTST_KEEP_HEAP=0) and with the setting, alternately, and the table gives wall time, CPU time
(user + system: less sensitive to other jobs on the machine than wall time) and page faults.

    python benchmarks/allocator.py                 # inference 1024², a Gatys evaluation 512², a training step 256 b4
    python benchmarks/allocator.py --quick         # small sizes, one round (smoke test)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKLOADS = ("infer", "gatys", "train")
COLUMNS = ("workload", "setting", "wall_s", "cpu_s", "system_s", "page_faults", "machine")


def child(workload: str, size: int, calls: int) -> dict[str, float]:
    """Run `calls` timed repetitions of one workload after one untimed warm-up; return the costs."""
    import torch

    import benchutil as bu  # applies keep_freed_memory() unless FASTST_KEEP_HEAP=0

    torch.manual_seed(0)
    if workload == "infer":
        from fastst.inference.stylizer import Stylizer, stylize
        from fastst.modelfile import load_model

        stylizer = Stylizer(load_model(None), device="cpu", precision="fp32")
        image = bu.square(bu.load_content(), size)
        run = lambda: stylize(stylizer, image, style=0)  # noqa: E731
    elif workload == "gatys":
        import gatys.optimize as go

        cl, sl = go.default_layers(go.DEFAULT_BACKBONE)
        net = go.loss_network(go.DEFAULT_BACKBONE, list(dict.fromkeys(cl + sl)))
        content = bu.square(bu.load_content(), size)
        objective = go.Objective(net, content, [bu.square(bu.load_content(bu.SAMPLE_STYLE), size)], cl, sl)
        pixels = content.clone().requires_grad_(True)

        def run() -> None:
            objective.terms(pixels)["total"].backward()
            pixels.grad = None
    else:
        run = bu.FaststTrainStep(size=size, batch=4)
    run()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(calls):
        run()
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    return {"wall_s": wall / calls, "cpu_s": (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / calls,
            "system_s": (r1.ru_stime - r0.ru_stime) / calls, "page_faults": (r1.ru_minflt - r0.ru_minflt) / calls}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated from {', '.join(WORKLOADS)}")
    p.add_argument("--rounds", type=int, default=None, help="processes per setting and workload (default 2; quick 1)")
    p.add_argument("--quick", action="store_true", help="64-128 px, one call, one round")
    p.add_argument("--csv", default=None, help="write the table as CSV here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--calls", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.size, args.calls)))
        return

    import benchutil as bu

    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workload {', '.join(sorted(unknown))}; choose from {', '.join(WORKLOADS)}")
    sizes = {"infer": 1024, "gatys": 512, "train": 256} if not args.quick else {"infer": 128, "gatys": 64, "train": 64}
    calls = {"infer": 3, "gatys": 3, "train": 2} if not args.quick else dict.fromkeys(WORKLOADS, 1)
    rounds = args.rounds or (1 if args.quick else 2)
    machine = bu.machine_line("cpu")
    print(f"# {machine}", file=sys.stderr)
    rows = []
    for workload in workloads:
        results: dict[str, list[dict[str, float]]] = {"glibc default": [], "keep freed memory": []}
        for _ in range(rounds):
            for setting, keep in (("glibc default", "0"), ("keep freed memory", "1")):
                env = {**os.environ, "FASTST_KEEP_HEAP": keep}
                out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", workload,
                                      "--size", str(sizes[workload]), "--calls", str(calls[workload])],
                                     env=env, capture_output=True, text=True)
                if out.returncode != 0:
                    sys.exit(f"allocator.py: {workload} ({setting}) failed:\n{out.stderr[-2000:]}")
                results[setting].append(json.loads(out.stdout.strip().splitlines()[-1]))
        for setting, runs in results.items():
            rows.append({"workload": f"{workload} {sizes[workload]}px", "setting": setting, "machine": machine,
                         **{k: statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s", "system_s", "page_faults")}})
        a, b = rows[-2:]
        print(f"# {a['workload']}: CPU time {b['cpu_s'] / a['cpu_s'] - 1:+.0%}, wall {b['wall_s'] / a['wall_s'] - 1:+.0%} "
              f"with freed memory kept", file=sys.stderr, flush=True)
    print(f"{'workload':12s} {'setting':18s} {'wall s':>8s} {'CPU s':>8s} {'system s':>9s} {'page faults':>12s}")
    for r in rows:
        print(f"{r['workload']:12s} {r['setting']:18s} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} {r['system_s']:9.2f} "
              f"{r['page_faults']:12.0f}")
    for a, b in zip(rows[::2], rows[1::2]):
        print(f"{a['workload']}: CPU time {b['cpu_s'] / a['cpu_s'] - 1:+.0%}, wall {b['wall_s'] / a['wall_s'] - 1:+.0%} "
              f"with freed memory kept")
    if args.csv:
        print(f"wrote {bu.write_csv(args.csv, rows, COLUMNS)}")


if __name__ == "__main__":
    main()
