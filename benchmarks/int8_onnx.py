"""An int8 path, tried: the bundled model's ONNX export quantized by ONNX Runtime (static, QDQ,
per-channel int8 weights, uint8 activations calibrated on a few photos; convolutions only, the
instance norms stay fp32), against the fp32 export and fastst's default torch path. Prints one
thread's CPU time per image, the difference from fp32 (max and mean |Δ|, PSNR) and Gatys' objective
under the fixed scorer (lower is better) for both, and writes a strip: fp32 | int8 | 4·|Δ|.

    python benchmarks/int8_onnx.py                    # 8 calibration photos at 256², 4 test photos at 512²
    python benchmarks/int8_onnx.py --sheet int8.jpg --size 384

Photos come from ../shared/data/photos/misc (or $FASTST_BENCH_DATA), else the bundled samples.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import benchutil as bu  # noqa: E402 - also puts the repository on sys.path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--calibration", type=int, default=8, help="calibration photos (default 8, at 256²)")
    p.add_argument("--photos", type=int, default=4, help="test photos (default 4)")
    p.add_argument("--size", type=int, default=512, help="test size (default 512)")
    p.add_argument("--sheet", default=None, help="write the fp32 | int8 | 4·|Δ| strip here")
    p.add_argument("--no-score", action="store_true", help="skip Gatys' objective (about 2 s per image)")
    args = p.parse_args(argv)

    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from export.runtime import onnx_for
    from fastst.images import find_images, load_image, save_image
    from fastst.inference.stylizer import Stylizer, stylize
    from fastst.modelfile import load_model

    model = load_model(None)
    folder = bu.shared_path("photos/misc") or bu.SAMPLES / "photos"
    photos = find_images(folder)
    calib, test = photos[:args.calibration], photos[args.calibration:args.calibration + args.photos]
    if not test:
        p.error(f"{folder} has too few photos for {args.calibration} calibration and {args.photos} test photos")
    style = model.style_weights(0, 1).numpy().astype(np.float32)
    style_name = model.style_names[0]

    def photo(path: Path, size: int) -> np.ndarray:
        return bu.square(load_image(path), size).unsqueeze(0).numpy().astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([{"image": photo(q, 256), "style": style} for q in calib])

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    fp32_path = Path(onnx_for(model).path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.log_severity_level = 1, 3
    with tempfile.TemporaryDirectory() as tmp:
        pre, int8_path = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        with contextlib.chdir(tmp):  # the pre-processing leaves a sym_shape_infer_temp.onnx in the working folder
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(int8_path), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Percentile, extra_options={"CalibPercentile": 99.99})
        s32 = ort.InferenceSession(str(fp32_path), opts, providers=["CPUExecutionProvider"])
        s8 = ort.InferenceSession(str(int8_path), opts, providers=["CPUExecutionProvider"])

    print(f"# {bu.machine_line()}")
    print(f"# {len(calib)} calibration photos at 256², {len(test)} test photos at {args.size}² from {folder}; "
          f"style {style_name}\n")
    print("| photo | max abs diff | mean abs diff | PSNR vs fp32 | objective fp32 | objective int8 |")
    print("|---|---:|---:|---:|---:|---:|")
    strips = []
    for path in test:
        x = photo(path, args.size)
        a = s32.run(None, {"image": x, "style": style})[0]
        b = s8.run(None, {"image": x, "style": style})[0]
        d = np.abs(a - b)
        psnr = 10 * np.log10(1 / max(float(np.mean((a - b) ** 2)), 1e-12))
        scores = ["", ""]
        if not args.no_score:
            from gatys.scoring import score

            content, painting = torch.from_numpy(x[0]), load_image(bu.SAMPLES / "styles" / f"{style_name}.jpg")
            scores = [f"{score(content, painting, torch.from_numpy(o[0]))['total']:.3g}" for o in (a, b)]
        print(f"| {path.name} | {d.max():.3f} | {d.mean():.4f} | {psnr:.1f} dB | {scores[0]} | {scores[1]} |", flush=True)
        strips.append(torch.cat([torch.from_numpy(a[0]), torch.from_numpy(b[0]), torch.from_numpy(np.clip(4 * d[0], 0, 1))], 2))

    x = photo(test[0], args.size)
    torch.set_num_threads(1)
    runner = Stylizer(model, device="cpu")
    runs = {"onnxruntime fp32": lambda: s32.run(None, {"image": x, "style": style}),
            "onnxruntime int8": lambda: s8.run(None, {"image": x, "style": style}),
            f"torch default ({runner.precision}, channels-last)": lambda: stylize(runner, torch.from_numpy(x))}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()
    for r in range(5):
        for k in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            t = time.process_time()
            runs[k]()
            times[k].append(time.process_time() - t)
    print(f"\nOne thread's CPU time per {args.size}² image (medians of 5, interleaved):")
    for k, v in times.items():
        print(f"  {k}: {1e3 * statistics.median(v):.0f} ms")
    if args.sheet:
        save_image(torch.cat(strips, 1), args.sheet)
        print(f"wrote {args.sheet}")
    print(f"\n(command: python benchmarks/int8_onnx.py {' '.join(sys.argv[1:] if argv is None else argv)})")


if __name__ == "__main__":
    main()
