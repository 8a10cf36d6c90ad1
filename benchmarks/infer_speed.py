"""Inference speed and memory of `fastst infer` on this machine.

Prints a markdown report: ms per image at 256/512/1024 px for torch fp32, torch bf16 and ONNX
Runtime; video frames per second at 720x528 (end to end: decode, stylize, encode) next to the
network alone; and the peak memory (the child process's own ru_maxrss) of `fastst infer` on a
4096x4096 image with tiling. A random-init model has the same cost as a trained one.

    python benchmarks/infer_speed.py                 # everything (~15 min on an idle 2-core CPU)
    python benchmarks/infer_speed.py --skip-memory --sizes 256 512
    python benchmarks/infer_speed.py --megamind      # the video is ../shared/data/video/megamind.avi
                                                     # (or under $FASTST_BENCH_DATA); --video any file

Targets (2-core CPU): 512x512 in at most 150 ms; the 16-megapixel image under 2 GiB peak memory.
Timings are medians of --repeats runs after a warm-up, all in one process; other load on the
machine inflates them (the load average is printed).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import benchutil as bu  # also puts the repository on sys.path and keeps freed memory, as fastst does
from fastst.hardware import cpu_has_fast_bf16
from fastst.inference.stylizer import Stylizer
from fastst.inference.tiling import AUTO_TILE
from fastst.modelfile import StyleInfo, StyleModel, save_model
from fastst.transformer import TransformerNet

MEGAMIND = "video/megamind.avi"  # in the benchmark data folder (benchutil.DATA)


def median_ms(fn: Callable[[], object], repeats: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Median milliseconds of `repeats` calls after one warm-up call (allocations, oneDNN kernel choice)."""
    return bu.time_calls(fn, warmup=1, min_iters=repeats, max_iters=repeats, min_seconds=0, clock=clock).median


def bench_images(model: StyleModel, sizes: list[int], repeats: int, onnx_path: Path | None) -> list[str]:
    rows = ["| backend | " + " | ".join(f"{s}×{s}" for s in sizes) + " |",
            "|---|" + "---|" * len(sizes)]
    fast_bf16 = cpu_has_fast_bf16()
    configs = [("torch fp32 (channels-last, the default)", dict(precision="fp32")),
               ("torch fp32 plain NCHW", dict(precision="fp32", channels_last=False)),
               ("torch bf16 (channels-last, the default)", dict(precision="bf16")),
               ("torch bf16 plain NCHW", dict(precision="bf16", channels_last=False))]
    for label, kw in configs:
        stylizer = Stylizer(model, device="cpu", **kw)
        cells = []
        for s in sizes:
            x = torch.rand(1, 3, s, s)
            w = stylizer.style_weights(0)
            if kw["precision"] == "bf16" and not fast_bf16 and s > sizes[0]:
                cells.append("skipped (emulated)")
                continue
            if kw["precision"] == "bf16" and not fast_bf16:  # minutes per run: one run, no warm-up
                cells.append(f"{1000 * bu.time_once(lambda: stylizer.batch(x, w, tile=0)):.0f} ms (emulated, 1 run)")
            else:
                cells.append(f"{median_ms(lambda: stylizer.batch(x, w, tile=0), repeats):.0f} ms")
            print(f"  {label} {s}: {cells[-1]}", file=sys.stderr, flush=True)
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    if onnx_path is not None:
        from export.runtime import OnnxModel
        onnx = Stylizer(OnnxModel(onnx_path))
        cells = []
        for s in sizes:
            x = torch.rand(1, 3, s, s)
            ms = median_ms(lambda: onnx.batch(x, onnx.style_weights(0), tile=0), repeats)
            cells.append(f"{ms:.0f} ms")
            print(f"  onnxruntime {s}: {cells[-1]}", file=sys.stderr, flush=True)
        rows.append("| onnxruntime (CPU EP) | " + " | ".join(cells) + " |")
    # CPU time of one thread is much less sensitive to other processes than wall time
    rows += ["", "Single-thread CPU time per image (`time.process_time`, 1 thread; little affected by "
             "other load; an idle 2-core machine needs about half of it in wall time):", "",
             "| backend | " + " | ".join(f"{s}×{s}" for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runners = [("torch fp32", Stylizer(model, device="cpu", precision="fp32"))]
        if fast_bf16:
            runners.append(("torch bf16", Stylizer(model, device="cpu", precision="bf16")))
        if onnx_path is not None:
            from export.runtime import OnnxModel
            runners.append(("onnxruntime (CPU EP)", Stylizer(OnnxModel(onnx_path, threads=1))))
        for label, runner in runners:
            cells = []
            for s in sizes:
                x, w = torch.rand(1, 3, s, s), runner.style_weights(0)
                ms = median_ms(lambda: runner.batch(x, w, tile=0), max(1, repeats // 2),
                               clock=time.process_time)
                cells.append(f"{ms:.0f} ms")
                print(f"  1-thread CPU {label} {s}: {cells[-1]}", file=sys.stderr, flush=True)
            rows.append(f"| {label} | " + " | ".join(cells) + " |")
    finally:
        torch.set_num_threads(threads)
    return rows


def make_video(path: Path, frames: int, width: int = 720, height: int = 528, fps: int = 24) -> Path:
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        yy, xx = np.mgrid[0:height, 0:width]
        for i in range(frames):
            img = np.stack([(xx + 4 * i) % 256, (yy * 2) % 256, ((xx + yy) // 3 + 8 * i) % 256], -1).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def bench_video(model: StyleModel, frames: int, batch_size: int, tmp: Path, video: Path | None) -> list[str]:
    from fastst.inference.video import stylize_video

    if video is not None:
        src, what = video, f"{video.name} (all its frames)"
    else:
        src, what = make_video(tmp / "bench.mp4", frames), f"generated 720×528 H.264, {frames} frames"
    rows = []
    for precision in ["fp32"] + (["bf16"] if cpu_has_fast_bf16() else []):
        stylizer = Stylizer(model, device="cpu", precision=precision)
        x = torch.rand(batch_size, 3, 528, 720)
        w = stylizer.style_weights(0, batch_size)
        net_ms = median_ms(lambda: stylizer.batch(x, w, tile=0), 2) / batch_size
        result = stylize_video(stylizer, src, tmp / f"out_{precision}.mp4", stylizer.style_weights(0),
                               batch_size=batch_size, progress=False)
        rows.append(f"| {precision}, batch {batch_size} | {result.frames_per_second:.2f} | {1000 / net_ms:.2f} | "
                    f"{result.frames} frames, audio {result.audio} |")
        print(f"  video {precision}: {rows[-1]}", file=sys.stderr, flush=True)
    return [f"Input: {what}.", "", "| precision | end-to-end frames/s | network alone frames/s | notes |",
            "|---|---|---|---|", *rows]


def bench_memory(model_path: Path, tmp: Path, size: int, tile: int | None) -> list[str]:
    from PIL import Image

    big = tmp / f"big{size}.jpg"
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rgb = np.stack([np.sin(40 * xx) * 0.5 + 0.5, yy, np.cos(30 * (xx + yy)) * 0.5 + 0.5], -1)
    rgb += np.random.default_rng(0).normal(0, 0.05, rgb.shape).astype(np.float32)
    Image.fromarray((rgb.clip(0, 1) * 255).astype(np.uint8)).save(big, quality=92)
    del yy, xx, rgb
    out = tmp / "big_out.jpg"
    cmd = [sys.executable, "-c", "import sys; from fastst.cli import main; sys.exit(main(sys.argv[1:]))",
           "infer", "-q", "--overwrite", "--precision", "fp32", str(model_path), str(big), "-o", str(out)]
    if tile:
        cmd += ["--tile", str(tile)]
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        # this child's own peak: RUSAGE_CHILDREN would report the largest of every child so far (the ONNX
        # export's, the video encoder's), well above this run's own
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    seconds = time.perf_counter() - t
    peak = usage.ru_maxrss / 2**20  # KiB -> GiB
    how = f"--tile {tile}" if tile else f"default (auto: {AUTO_TILE} px tiles)"
    if proc.returncode != 0:
        rows = [f"| {how} | failed: {stderr.strip()[-200:]} | | |"]
    else:
        rows = [f"| {how} | {peak:.2f} GiB | {seconds:.0f} s | {'yes' if peak < 2 else 'NO'} |"]
    print(f"  memory: {rows[-1]}", file=sys.stderr, flush=True)
    return [f"`fastst infer` on a {size}×{size} JPEG ({size * size / 1e6:.1f} MP), fp32, in a child process:", "",
            "| tiling | peak RSS (ru_maxrss) | wall time | under 2 GiB |", "|---|---|---|---|", *rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--video-frames", type=int, default=24, help="frames of the generated 720x528 video")
    ap.add_argument("--video", type=Path, default=None, help="time this video instead of a generated one")
    ap.add_argument("--megamind", action="store_true",
                    help=f"time {MEGAMIND} (720x528, 270 frames, with audio) of the benchmark data folder "
                         "(../shared/data, or $FASTST_BENCH_DATA)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--memory-size", type=int, default=4096)
    ap.add_argument("--tile", type=int, default=None, help="default: fastst's automatic tiling")
    ap.add_argument("--width", type=int, default=32, help="the network's width (fastst train --width; default 32)")
    ap.add_argument("--skip-images", action="store_true")
    ap.add_argument("--skip-onnx", action="store_true")
    ap.add_argument("--skip-video", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    if args.megamind:
        args.video = bu.shared_path(MEGAMIND)
        if args.video is None:
            ap.error(f"--megamind: {bu.DATA / MEGAMIND} not found (set FASTST_BENCH_DATA, or give --video)")
    if args.video is not None and not args.video.is_file():
        ap.error(f"--video: no such file: {args.video}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = StyleModel(net=TransformerNet(4, width=args.width).eval(), styles=[StyleInfo(f"s{i}") for i in range(4)])
    print(f"Machine: {bu.machine_line()}\n\nA 4-style network of width {args.width}.\n")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model_path = save_model(tmp / "random4.fst", model.net, model.styles)
        onnx_path = None
        if not (args.skip_onnx or args.skip_images):
            try:
                from export.onnx_export import export_onnx
                onnx_path = tmp / "random4.onnx"
                export_onnx(model, onnx_path, verify=False)
            except Exception as e:  # noqa: BLE001 - report and go on without ONNX
                print(f"(ONNX Runtime skipped: {type(e).__name__}: {e})\n")
                onnx_path = None
        if not args.skip_images:
            print("## Images: median ms per image (batch 1, whole image)\n")
            print("\n".join(bench_images(model, args.sizes, args.repeats, onnx_path)) + "\n")
        if not args.skip_video:
            print("## Video at 720×528\n")
            print("\n".join(bench_video(model, args.video_frames, args.batch_size, tmp, args.video)) + "\n")
        if not args.skip_memory:
            print("## Peak memory, tiled\n")
            print("\n".join(bench_memory(model_path, tmp, args.memory_size, args.tile)) + "\n")
    print(f"Load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
