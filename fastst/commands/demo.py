"""The main job on the embedded default (`make demo`): train a quick model on the bundled sample
photos, stylize the samples with it and with the pretrained model, export both to ONNX and
Core ML, and print where every output is. `--tiny` runs the same steps in seconds (used by CI)."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import FaststError
from ..openmp import bound_openmp_spin
from ..paths import check_writable_folder
from .flags import positive


def run_demo(out: Path, tiny: bool = False, photos: int = 6) -> dict[str, list[Path]]:
    """Run the demo into `out`; returns the written files grouped by step."""
    from ..images import find_images
    from ..modelfile import load_model
    from ..samples import sample_photos

    check_writable_folder(out, create=True)  # a file in the way or a read-only folder: one line, before any work
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    quick = _train_quick(out, tiny)
    print("[2/3] stylizing the sample photos", flush=True)
    models = [("quick", load_model(quick)), ("pretrained", load_model(None))]
    files = find_images(sample_photos())[: (2 if tiny else photos)]
    written = {"model": [quick, out / "starry_quick_logs" / "losses.png"],
               "stylized": _stylize_samples(out, files, models, tiny),
               "export": _export(out, models, tiny)}
    print(f"\ndemo finished in {(time.time() - started) / 60:.1f} min; outputs:")
    for step, paths in written.items():
        for p in paths:
            print(f"  {step:9s} {p}")
    print(f"  look at   {out / 'contact_sheet.jpg'} (rows: photos; columns: original, quick model, pretrained styles)")
    return written


def _train_quick(out: Path, tiny: bool) -> Path:
    """Step 1: a quick one-style Starry Night model trained on the bundled photos."""
    from ..samples import sample_photos, sample_styles
    from ..training import PRESETS, QUICK_SECONDS_PER_STEP, TrainConfig, train, trainer_precision
    from .train import earlier_run_logs, replacing_logs

    preset = dict(PRESETS["quick"])
    if tiny:
        preset.update(image_size=32, batch_size=2, steps=2, preview_every=1, checkpoint_every=1)
    cfg = TrainConfig(**preset)
    precision = trainer_precision("cpu")
    per_step = QUICK_SECONDS_PER_STEP["bf16" if "bf16" in precision else "fp32"] * (cfg.image_size / 160) ** 2
    # from scratch, unlike `fastst train --preset quick`: the demo shows training itself, and its model
    # stays distinct from the pretrained Starry Night beside it on the contact sheet
    print(f"[1/3] training a quick Starry Night model from scratch: {cfg.steps} steps at {cfg.image_size} px, "
          f"{precision}, expected about {max(1, round(cfg.steps * per_step / 60))} min", flush=True)
    log_dir = out / "starry_quick_logs"  # a demo run again replaces its earlier run's logs, as train --overwrite does
    return replacing_logs(log_dir, earlier_run_logs(log_dir), lambda: train(
        [sample_styles() / "starry_night.jpg"], sample_photos(), out / "starry_quick.fst", cfg, log_dir=log_dir,
        accelerator="cpu", devices=1, precision=precision, progress=True))


def _stylize_samples(out: Path, files: list[Path], models: list[tuple[str, Any]], tiny: bool) -> list[Path]:
    """Step 2: every photo in every style of every model, and a contact sheet of them all."""
    from ..controls import groups
    from ..images import load_image, save_image
    from ..inference.stylizer import Stylizer
    from ..sheets import contact_sheet

    written: list[Path] = []
    sheet_images, sheet_labels = [], []
    for f in files:
        photo = load_image(f, size=64 if tiny else 512)
        sheet_images.append(photo)
        sheet_labels.append(f.stem)
        for tag, model in models:
            runner = Stylizer(model)
            for name in groups(model.styles):  # each style at the model's default strength and stroke
                weights, blend = runner.controls(name)
                result = runner.batch(photo.unsqueeze(0), weights, pixel_blend=blend)[0]
                path = out / "stylized" / f"{f.stem}_{tag}_{name}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                written.append(save_image(result, path))
                sheet_images.append(result)
                sheet_labels.append(f"{tag}: {name}")
    cols = 1 + sum(len(groups(m.styles)) for _, m in models)
    written.append(contact_sheet(sheet_images, sheet_labels, out / "contact_sheet.jpg", tile=96 if tiny else 256,
                                 cols=cols))
    return written


def _export(out: Path, models: list[tuple[str, Any]], tiny: bool) -> list[Path]:
    """Step 3: both models as ONNX and Core ML."""
    from export.coreml_export import export_coreml
    from export.onnx_export import export_onnx

    print("[3/3] exporting to ONNX and Core ML", flush=True)
    sizes = [(64, 64), (64, 96)] if tiny else None  # Core ML wants at least two enumerated sizes
    written: list[Path] = []
    for tag, model in models:
        export_onnx(model, out / f"{tag}.onnx")
        export_coreml(model, out / f"{tag}.mlpackage", sizes=sizes)
        written += [out / f"{tag}.onnx", out / f"{tag}.mlpackage"]
    return written


def main(argv: Sequence[str] | None = None) -> int:
    bound_openmp_spin()  # before torch loads: see fastst.openmp
    parser = argparse.ArgumentParser(prog="python -m fastst.commands.demo", description=__doc__)
    parser.add_argument("--out", default="demo-out", help="output folder [demo-out]")
    parser.add_argument("--photos", type=positive(1), default=6, help="how many sample photos to stylize [6]")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes and 2 training steps (a smoke test)")
    args = parser.parse_args(argv)
    try:
        run_demo(Path(args.out), tiny=args.tiny, photos=args.photos)
    except FaststError as e:
        print(f"fastst demo: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
