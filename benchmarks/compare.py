"""fastst against its peers, side by side in one process on one machine: inference
(pytorch/examples' fast_neural_style transformer, fp32 eager, vs fastst.stylize at its defaults),
one training step at 256 px batch 4 (that design with a full VGG16 loss network vs fastst's
StyleTransferModule step at its default precision), and Gatys (the PyTorch tutorial's L-BFGS loop vs
`gatys.optimize.stylize`). Medians over --repeat runs with min and max, a table and a CSV.
The peers are re-implemented from their published designs in benchmarks/peers.py.

    python benchmarks/compare.py --csv compare.csv          # the full comparison (about an hour on 2 cores)
    python benchmarks/compare.py --quick                     # tiny sizes, 1 repeat, 5 evaluations (CI)
    python benchmarks/compare.py --only inference --repeat 7

Ratios are speed-ups: above 1 means fastst is faster.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch

import benchutil as bu  # noqa: E402 - also puts the repository on sys.path
import peers

COLUMNS = ("benchmark", "setting", "unit", "peer", "fastst", "peer_median", "peer_min", "peer_max",
           "fastst_median", "fastst_min", "fastst_max", "speedup", "repeats", "max_abs_diff", "check", "machine")
SECTIONS = ("inference", "training", "gatys")


def _interleaved(a: Callable[[], Any], b: Callable[[], Any], repeat: int, device: torch.device,
                 warmup: int = 1) -> tuple[bu.Stats, bu.Stats]:
    """Seconds per call of a and of b, alternating a/b and b/a so that load changes hit both alike."""
    ta, tb = _rotated([a, b], repeat, device, warmup)
    return ta, tb


def _rotated(fns: Sequence[Callable[[], Any]], repeat: int, device: torch.device,
             warmup: int = 1) -> list[bu.Stats]:
    """Seconds per call of each function, run in order and then in reverse order on alternate
    repetitions, so that load changes hit all alike (one peer run can then serve several rows)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeat):
        order = list(range(len(fns))) if i % 2 == 0 else list(reversed(range(len(fns))))
        for k in order:
            times[k].append(bu.time_once(fns[k], device))
    return [bu.Stats.of(t) for t in times]


def _fastst_model(path: str | None):
    """The model to time: a .fst file, else the bundled pretrained model, else a random 1-style net."""
    from fastst.errors import FaststError
    from fastst.modelfile import load_model
    from fastst.transformer import TransformerNet

    if path:
        return load_model(path).net, f"{path}"
    try:
        return load_model(None).net, "bundled pretrained model"
    except (FaststError, ImportError):
        torch.manual_seed(0)
        net = TransformerNet(1).eval()
        with torch.no_grad():  # non-trivial norm parameters, so the agreement check means something
            for n in net.norms():
                n.scale.uniform_(0.5, 1.5)
                n.shift.uniform_(-0.5, 0.5)
        return net, "random-init TransformerNet (no pretrained model installed; timing is weight-independent)"


def bench_inference(args: argparse.Namespace, device: torch.device, rows: list[dict]) -> None:
    from export.runtime import onnx_for
    from fastst.inference.stylizer import Stylizer, stylize
    from fastst.inference.stylizer import as_model as _as_model

    net, source = _fastst_model(args.model)
    print(f"inference: fastst model = {source}; peer = fast_neural_style transformer with the same weights",
          file=sys.stderr)
    peer = peers.johnson_from_fastst(net, style=0).to(device).eval()
    default = Stylizer(net, device=str(device), precision="auto")  # fastst's default precision for the device
    fp32 = Stylizer(net, device=str(device), precision="fp32")
    # `fastst infer --backend onnx`: the same network exported once (cached) and run by onnxruntime
    ort = Stylizer(onnx_for(_as_model(net)), device="cpu") if device.type == "cpu" and not args.no_onnx else None
    photo = bu.load_content(args.content)
    for size in args.sizes:
        x = bu.square(photo, size).unsqueeze(0)
        x255 = x * 255

        def run_peer() -> torch.Tensor:
            with torch.no_grad():  # the peer's stylize script: model(image).cpu(), clamped when saved
                return peer(x255.to(device)).clamp(0, 255).cpu()

        # agreement: same weights -> the peer's output equals fastst's final conv output
        captured: dict[str, torch.Tensor] = {}
        hook = fp32.net.out.norm.register_forward_pre_hook(  # the norm's input is the final conv's output
            lambda m, args: captured.__setitem__("y", args[0].detach().float().cpu()))
        try:
            y32 = stylize(fp32, x)
        finally:
            hook.remove()
        with torch.no_grad():
            raw = peer(x255.to(device)).float().cpu()
            raw01 = peer(x.to(device)).float().cpu()
        diff = float((raw - captured["y"]).abs().max())
        diff01 = float((raw01 - captured["y"]).abs().max())
        scale = float(captured["y"].abs().max())
        check = (f"same weights, same input: max|Δ| {diff01:.1e} (|y| up to {scale:.2g}) between the peer's output and "
                 f"fastst's final conv (fastst adds IN+sigmoid after it); {diff:.1e} when the peer gets its 0-255 "
                 f"input (the first IN's eps meets a 255² larger variance)")
        if default.precision != "fp32":
            check += f"; fastst {default.precision} vs fp32 output max|Δ| {float((stylize(default, x) - y32).abs().max()):.1e}"

        t_peer, t_fast = _interleaved(run_peer, lambda: stylize(default, x), args.repeat, device)
        if default.precision != "fp32":
            t_peer2, t_fast32 = _interleaved(run_peer, lambda: stylize(fp32, x), args.repeat, device)
        else:
            t_fast32 = t_fast
        ms = lambda s: s * 1e3  # noqa: E731
        base = dict(benchmark="inference", setting=f"{size}x{size} batch 1", unit="ms/image",
                    peer="fast_neural_style fp32 eager", repeats=args.repeat)
        rows.append({**base, "fastst": f"fastst.stylize default ({default.device.type}, {default.precision})",
                     **_pair(t_peer.scaled(ms), t_fast.scaled(ms), faster_is="lower"), "check": check,
                     "max_abs_diff": diff01})
        rows.append({**base, "fastst": f"fastst.stylize fp32 ({fp32.device.type})",
                     **_pair(t_peer.scaled(ms), t_fast32.scaled(ms), faster_is="lower"),
                     "check": "same run as the default row (default is fp32 here)" if t_fast32 is t_fast else check})
        if ort is not None:
            y_ort = stylize(ort, x)
            t_peer_ort, t_ort = _interleaved(run_peer, lambda: stylize(ort, x), args.repeat, device)
            rows.append({**base, "fastst": "fastst infer --backend onnx (onnxruntime CPU, cached export)",
                         **_pair(t_peer_ort.scaled(ms), t_ort.scaled(ms), faster_is="lower"),
                         "check": f"onnxruntime vs PyTorch fp32 output max|Δ| {float((y_ort - y32).abs().max()):.1e} "
                                  "(peer re-timed, interleaved with this row)"})


def bench_training(args: argparse.Namespace, device: torch.device, rows: list[dict]) -> None:
    from fastst.backbones import load_vgg16_caffe
    from fastst.training import trainer_precision

    precision = trainer_precision(device.type)
    try:
        vgg_state, vgg_note = load_vgg16_caffe()[0], "vgg16-caffe weights"
    except Exception:  # noqa: BLE001 - the peer then runs on random weights: same operations
        vgg_state, vgg_note = None, "random-init weights"
    size, batch = args.train_size, args.batch
    style = bu.load_content(str(bu.SAMPLE_STYLE))
    style = bu.square(style, 2 * size)
    peer = peers.JohnsonTrainer(style, batch, device, vgg_state)
    x255 = (bu.sample_batch(size, batch) * 255).to(device)
    ours = bu.FaststTrainStep(size, batch, precision, device)
    steps = args.train_steps

    def run_peer() -> None:
        for _ in range(steps):
            peer.step(x255)

    def run_ours() -> None:
        for _ in range(steps):
            ours()

    t_peer, t_fast = _interleaved(run_peer, run_ours, args.repeat, device, warmup=0 if args.quick else 1)
    per_s = lambda s: steps * batch / s  # noqa: E731
    check = ("not like-for-like numerically: same transformer layers and loss layers, but the peer has no final "
             "norm/sigmoid and works in 0-255 with an ImageNet-normalised VGG16 (every slice on both batches) "
             f"[{vgg_note}], fastst uses Caffe VGG16 and stops the content pass at relu2_2")
    base = dict(benchmark="training", setting=f"{size} px batch {batch}", unit="images/s",
                peer="fast_neural_style step fp32 eager, full VGG16", repeats=args.repeat)
    rows.append({**base, "fastst": f"StyleTransferModule step ({device.type}, {precision})",
                 **_pair(t_peer.scaled(per_s), t_fast.scaled(per_s), faster_is="higher"), "check": check})
    if precision != "32-true":
        ours32 = bu.FaststTrainStep(size, batch, "32-true", device)

        def run_ours32() -> None:
            for _ in range(steps):
                ours32()
        t_peer, t_fast = _interleaved(run_peer, run_ours32, args.repeat, device, warmup=0 if args.quick else 1)
        rows.append({**base, "fastst": f"StyleTransferModule step ({device.type}, 32-true)",
                     **_pair(t_peer.scaled(per_s), t_fast.scaled(per_s), faster_is="higher"), "check": check})


def bench_gatys(args: argparse.Namespace, device: torch.device, rows: list[dict]) -> None:
    import gatys.optimize as go

    size, evals = args.gatys_size, args.gatys_evals
    content = bu.square(bu.load_content(args.content), size)
    style = bu.square(bu.load_content(args.style or str(bu.SAMPLE_STYLE)), size)
    cnn = peers.vgg19_features().to(device)
    c, s = content.unsqueeze(0).to(device), style.unsqueeze(0).to(device)
    done: dict[str, int] = {}
    # warm-up with 3 evaluations each (builds the loss networks, first-call kernels); a full warm-up
    # run would add ~20 minutes at 512 px on 2 CPU cores
    tutorial_layers = dict(content_layers=["relu2_2"],
                           style_layers=["relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1"])
    if not args.quick:
        peers.tutorial_gatys(cnn, c, s, 3)
        for options in ({}, tutorial_layers):
            go.stylize(content, style, size=size, iterations=3, device=str(device), **options)

    prec = "bf16 autocast" if go.bf16_default(device) else "fp32"  # what `gatys stylize` uses here by default

    def run_peer() -> None:
        done["peer"] = peers.tutorial_gatys(cnn, c, s, evals)[1]

    variants = {
        "deep": ({}, f"gatys.optimize.stylize ({device.type}, {prec}, vgg16-caffe to relu5_1)",
                 "not comparable pixel for pixel: different networks, layers and weights. Equal numbers of "
                 "evaluations (forward+backward), but not equal work per evaluation: the tutorial's conv_1..conv_5 "
                 "are VGG19's first five convs (to conv3_1, ~58 GFLOP forward at 512²), fastst runs Gatys' "
                 "layers to relu5_1 (11 convs, ~2.6x the FLOPs)"),
        "tutorial-layers": (tutorial_layers, f"gatys.optimize.stylize ({device.type}, {prec}, vgg16-caffe, the "
                            "tutorial's layers: content relu2_2, style relu1_1..relu3_1)",
                            "equal work per evaluation: VGG16's first five convs are VGG19's (same shapes), run to "
                            "conv3_1 on both sides; weights and loss scales differ, so outputs are not compared"),
        "tutorial-layers-fp32": ({**tutorial_layers, "bf16": False}, f"gatys.optimize.stylize ({device.type}, fp32 "
                                 "forced, vgg16-caffe, the tutorial's layers)",
                                 "equal work and equal precision: the tutorial-layers row without bf16 autocast "
                                 "(which gatys uses by default on CPUs with hardware bf16)"),
        "pyramid": ({"scales": 2}, f"gatys.optimize.stylize ({device.type}, {prec}, vgg16-caffe to relu5_1, --scales 2: "
                    f"{evals // 2} evaluations at {size // 2} px, then {evals - evals // 2} at {size} px)",
                    "the same number of evaluations, coarse to fine; the result is scored at full size under the "
                    "fixed vgg16-caffe objective"),
    }
    outputs: dict[str, torch.Tensor] = {}

    def run_ours(key: str) -> None:
        result = go.stylize(content, style, size=size, iterations=evals, device=str(device), **variants[key][0])
        done[key], outputs[key] = result.evaluations, result.image

    # one peer run per repetition serves every row: at 512 px it takes ~10 minutes
    stats = _rotated([run_peer] + [partial(run_ours, key) for key in args.gatys_rows], args.gatys_repeat, device,
                     warmup=0)
    if any(n != evals for n in done.values()):
        raise RuntimeError(f"evaluation counts differ from {evals}: {done}")
    for key, t_fast in zip(args.gatys_rows, stats[1:]):
        _, label, check = variants[key]
        if key in ("deep", "pyramid"):  # Gatys' own objective, comparable between these two rows
            objective = go.score(content, style, outputs[key], device=str(device))["total"]
            check = f"{check}; objective {objective:.3g}"
        rows.append(dict(benchmark="gatys", setting=f"{size}x{size}, {evals} L-BFGS evaluations", unit="s",
                         peer="PyTorch tutorial loop fp32 (VGG19 conv1_1..conv3_1, random init)", fastst=label,
                         repeats=args.gatys_repeat, **_pair(stats[0], t_fast, faster_is="lower"), check=check))


def _pair(peer: bu.Stats, fast: bu.Stats, faster_is: str) -> dict[str, Any]:
    speedup = peer.median / fast.median if faster_is == "lower" else fast.median / peer.median
    return dict(peer_median=peer.median, peer_min=peer.min, peer_max=peer.max, fastst_median=fast.median,
                fastst_min=fast.min, fastst_max=fast.max, speedup=speedup, _peer=peer, _fast=fast)


def print_table(rows: list[dict], machine: str) -> None:
    print(f"# {machine}")
    head = (f"{'benchmark':10s} {'setting':34s} {'unit':9s} {'peer median [min–max]':27s} "
            f"{'fastst median [min–max]':27s} {'speed-up':>8s}  fastst path")
    print(head)
    print("-" * len(head))
    for r in rows:
        fmt = "{:.3g}" if r["unit"] != "s" else "{:.1f}"
        print(f"{r['benchmark']:10s} {r['setting']:34s} {r['unit']:9s} {r['_peer'].text(fmt):27s} "
              f"{r['_fast'].text(fmt):27s} {r['speedup']:7.2f}x  {r['fastst']}")
    print("\nchecks:")
    for r in rows:
        print(f"  {r['benchmark']} {r['setting']} [{r['fastst']}]: {r['check']}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--quick", action="store_true", help="sizes 64/128, 1 repeat, 5 Gatys evaluations at 64 px (CI)")
    p.add_argument("--repeat", type=int, default=None, help="repetitions per measurement (default 5; quick 1)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--sizes", default=None, help="inference sizes, px (default 256,512,1024; quick 64,128)")
    p.add_argument("--train-size", type=int, default=None, help="training crop size (default 256; quick 64)")
    p.add_argument("--batch", type=int, default=4, help="training batch (default 4)")
    p.add_argument("--train-steps", type=int, default=None, help="steps per timed training repetition (default 2; quick 1)")
    p.add_argument("--gatys-size", type=int, default=None, help="Gatys image side (default 512; quick 64)")
    p.add_argument("--gatys-evals", type=int, default=None, help="L-BFGS evaluations (default 300; quick 5)")
    p.add_argument("--gatys-repeat", type=int, default=None, help="Gatys repetitions (default: min(--repeat, 3))")
    p.add_argument("--model", default=None, help="fastst .fst model to time (default: pretrained, else random)")
    p.add_argument("--content", default=None, help="content photo (default: a bundled sample)")
    p.add_argument("--style", default=None, help="style image for Gatys (default: a bundled sample)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda: both sides run there")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--csv", default=None, help="write the table as CSV here")
    p.add_argument("--gatys-rows", default="deep,tutorial-layers,pyramid",
                   help="comma-separated fastst Gatys runs to time against the tutorial: Gatys' layers to relu5_1 "
                        "(deep), the tutorial's layers (equal work per evaluation), the same in fp32 even where gatys "
                        "defaults to bf16 (tutorial-layers-fp32), deep with --scales 2 (pyramid); default: deep, "
                        "tutorial-layers, pyramid")
    p.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime inference row (it exports once, ~30 s)")
    args = p.parse_args(argv)
    q = args.quick
    args.repeat = args.repeat or (1 if q else 5)
    args.sizes = [int(s) for s in (args.sizes or ("64,128" if q else "256,512,1024")).split(",")]
    args.train_size = args.train_size or (64 if q else 256)
    args.train_steps = args.train_steps or (1 if q else 2)
    args.gatys_size = args.gatys_size or (64 if q else 512)
    args.gatys_evals = args.gatys_evals or (5 if q else 300)
    args.gatys_repeat = args.gatys_repeat or min(args.repeat, 3)
    args.gatys_rows = [s.strip() for s in args.gatys_rows.split(",") if s.strip()]
    if not args.gatys_rows or set(args.gatys_rows) - {"deep", "tutorial-layers", "tutorial-layers-fp32", "pyramid"}:
        p.error("--gatys-rows takes deep, tutorial-layers, tutorial-layers-fp32 and pyramid")
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if set(only) - set(SECTIONS):
        p.error(f"--only takes {', '.join(SECTIONS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    from fastst.training import quiet_lightning
    quiet_lightning()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA GPU here")
    machine = bu.machine_line(device)
    rows: list[dict] = []
    started = time.perf_counter()
    for name in only:
        t = time.perf_counter()
        {"inference": bench_inference, "training": bench_training, "gatys": bench_gatys}[name](args, device, rows)
        print(f"[{name} done in {time.perf_counter() - t:.0f} s]", file=sys.stderr, flush=True)
    print_table(rows, machine)
    print(f"\n({time.perf_counter() - started:.0f} s in all; command: python benchmarks/compare.py "
          f"{' '.join(sys.argv[1:] if argv is None else argv)})")
    if args.csv:
        path = bu.write_csv(args.csv, [{**r, "machine": machine} for r in rows], COLUMNS)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
