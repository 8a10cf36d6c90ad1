"""Two fastst processes on one machine: does each leave the other its share of the CPU? One worker
process alone, then two side by side, for inference (`fastst.stylize` at the defaults) and for
training steps, under each OpenMP wait setting: libgomp's default (busy-wait 300,000 spins after
every parallel region), fastst's bound (GOMP_SPINCOUNT=10000, what the fastst and gatys commands set
before torch loads) and OMP_WAIT_POLICY=PASSIVE (no spinning). Every worker uses all the cores, as a
user's process does. Prints per-process and aggregate throughput; the pair's aggregate over the lone
process's throughput is what running the two jobs side by side gains (1.0: as fast as one after the
other; the target is at least 0.9).

    python benchmarks/contention.py                               # infer 512² and train 256 px b4, 3 settings
    python benchmarks/contention.py --work infer --seconds 30 --repeat 3
    python benchmarks/contention.py --settings default,spin=1000,spin=100000,fastst   # other spin counts

Run it on a machine where nothing else runs: other load makes these figures meaningless (the load
average is printed before every measurement). About 20 s per measurement with the defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = {"default": "libgomp default (spin 300000)", "fastst": "fastst's bound (GOMP_SPINCOUNT=10000)",
            "passive": "OMP_WAIT_POLICY=PASSIVE"}
WAIT_VARIABLES = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def worker(args: argparse.Namespace) -> None:
    """One process: apply the setting before torch loads, warm up, say READY, wait for GO on stdin,
    then run the work for `seconds` and print the items done and the time as JSON."""
    if args.setting == "fastst":
        sys.path.insert(0, str(HERE.parent))
        from fastst.openmp import bound_openmp_spin
        bound_openmp_spin()  # exactly what the commands do first
    import torch

    import benchutil as bu  # also keeps freed memory in the heap, as the commands do

    if args.worker == "infer":
        from fastst.inference.stylizer import Stylizer, stylize
        from fastst.modelfile import load_model

        runner = Stylizer(load_model(None), device="cpu")
        x = bu.square(bu.load_content(), args.size).unsqueeze(0)

        def step() -> int:
            stylize(runner, x)
            return 1
    else:
        from fastst.training import quiet_lightning, trainer_precision

        quiet_lightning()
        train_step = bu.FaststTrainStep(args.train_size, args.batch, trainer_precision("cpu"), "cpu")

        def step() -> int:
            train_step()
            return args.batch
    step()
    step()
    print("READY", flush=True)
    sys.stdin.readline()
    items, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < args.seconds:
        items += step()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"items": items, "seconds": elapsed, "cpu_seconds": cpu, "threads": torch.get_num_threads(),
                      "spincount": os.environ.get("GOMP_SPINCOUNT"), "policy": os.environ.get("OMP_WAIT_POLICY")}),
          flush=True)


def environment(setting: str) -> dict[str, str]:
    """The workers' environment for a setting: the user's wait variables removed, then the setting's."""
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if setting == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif setting.startswith("spin="):
        env["GOMP_SPINCOUNT"] = setting.split("=", 1)[1]
    return env


def measure(args: argparse.Namespace, work: str, setting: str, processes: int) -> list[tuple[float, float]]:
    """(items per second, CPU seconds per item) of each of `processes` workers run side by side over the
    same window. CPU time per item counts what spinning wastes, whatever else runs on the machine."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", work, "--setting", setting,
           "--seconds", str(args.seconds), "--size", str(args.size), "--train-size", str(args.train_size),
           "--batch", str(args.batch)]
    procs = [subprocess.Popen(cmd, env=environment(setting), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    try:
        for p in procs:
            if _line(p, lambda s: s == "READY") is None:
                raise RuntimeError(f"a worker failed to start ({work}, {setting}): exit status {p.wait()}")
        for p in procs:  # both start their window together
            p.stdin.write("GO\n")
            p.stdin.flush()
        results = [json.loads(_line(p, lambda s: s.startswith("{")) or "{}") for p in procs]
    finally:
        for p in procs:
            p.wait(timeout=args.seconds * 10 + 300)
    return [(r["items"] / r["seconds"], r["cpu_seconds"] / max(r["items"], 1)) for r in results]


def _line(proc: subprocess.Popen, want) -> str | None:
    """The worker's next stdout line that `want` accepts (libraries may print others); None at its end."""
    for line in proc.stdout:
        if want(line.strip()):
            return line.strip()
    return None


def machine() -> str:
    import benchutil as bu

    return bu.machine_line()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--work", default="infer,train", help="infer, train or both (default)")
    p.add_argument("--settings", default="default,fastst,passive",
                   help="comma list of default, fastst, passive and spin=N (GOMP_SPINCOUNT=N); default: the first three")
    p.add_argument("--seconds", type=float, default=15.0, help="measured window per measurement (default 15)")
    p.add_argument("--repeat", type=int, default=1, help="measurements per setting, interleaved (default 1)")
    p.add_argument("--size", type=int, default=512, help="inference image side (default 512)")
    p.add_argument("--train-size", type=int, default=256, help="training crop size (default 256)")
    p.add_argument("--batch", type=int, default=4, help="training batch (default 4)")
    p.add_argument("--worker", choices=("infer", "train"), help=argparse.SUPPRESS)
    p.add_argument("--setting", default="default", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    for s in settings:
        if s not in SETTINGS and not (s.startswith("spin=") and s[5:].isdigit()):
            p.error(f"unknown setting {s!r}")
    works = [w.strip() for w in args.work.split(",") if w.strip()]
    print(f"# {machine()}")
    print(f"# {args.seconds:g} s windows; inference {args.size}² (fastst.stylize defaults); training "
          f"{args.train_size} px, batch {args.batch} (fastst's step at its default precision)\n")
    rows = []
    for work in works:
        unit = "images/s"
        alone: dict[str, list[float]] = {s: [] for s in settings}
        pair: dict[str, list[list[float]]] = {s: [] for s in settings}
        cpu: dict[str, list[float]] = {s: [] for s in settings}  # CPU s per item, in the pairs
        loads: dict[str, list[float]] = {s: [] for s in settings}
        for r in range(args.repeat):
            for s in (settings if r % 2 == 0 else settings[::-1]):
                loads[s].append(os.getloadavg()[0])
                alone[s].append(measure(args, work, s, 1)[0][0])
                both = measure(args, work, s, 2)
                pair[s].append([rate for rate, _ in both])
                cpu[s] += [c for _, c in both]
                print(f"  [{work}, {s}: alone {alone[s][-1]:.3g}, pair {' + '.join(f'{v:.3g}' for v in pair[s][-1])} "
                      f"{unit}; load average before {loads[s][-1]:.1f}]", file=sys.stderr, flush=True)
        for s in settings:
            a = statistics.median(alone[s])
            each = [statistics.median(v) for v in zip(*pair[s])]
            total = statistics.median([sum(v) for v in pair[s]])
            rows.append((work, SETTINGS.get(s, f"GOMP_SPINCOUNT={s[5:]}"), a, each, total, total / a, max(loads[s]),
                         a / statistics.median(alone[settings[0]]), statistics.median(cpu[s])))
    print(f"| work | setting | alone ({unit}) | alone vs {settings[0]} | pair, each | pair, aggregate | "
          "aggregate ÷ alone | CPU s per item, pair | load avg before |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|")
    for work, label, a, each, total, ratio, load, rel, cpu_item in rows:
        print(f"| {work} | {label} | {a:.3g} | {rel:.3f} | {' / '.join(f'{v:.3g}' for v in each)} | {total:.3g} | "
              f"**{ratio:.2f}** | {cpu_item:.3g} | {load:.1f} |")
    print(f"\n(command: python benchmarks/contention.py {' '.join(sys.argv[1:] if argv is None else argv)})")


if __name__ == "__main__":
    main()
