"""benchmarks/flicker.py runs end to end on a small generated clip: the table, the CSV (input floor,
model rows, --temporal rows with lower warping error) and the strip picture."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")

from test_video import make_video  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_flicker_benchmark_on_a_small_clip(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", frames=8, width=96, height=64, audio=None)
    out_csv, strip = tmp_path / "flicker.csv", tmp_path / "strip.jpg"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "flicker.py"), "--video", str(clip), "--size", "96",
                          "--style", "starry_night", "--temporal", "0.8", "--style-frames", "2", "--csv", str(out_csv),
                          "--strip", str(strip), "--strip-start", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "E_warp" in run.stdout and "machine:" in run.stdout
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["model"] for r in rows] == ["input", "fastst-4styles.fst", "fastst-4styles.fst"]
    floor, plain, smooth = (float(r["warp_error"]) for r in rows)
    assert 0 <= floor < plain and smooth < plain
    assert float(rows[1]["style_term"]) > 0 and rows[1]["frames"] == "8" and rows[1]["size"] == "96x64"
    assert strip.is_file() and strip.stat().st_size > 1000


def test_flicker_benchmark_at_a_strength(tmp_path):
    """--strength measures the style as `fastst infer --strength` paints it: at 0 the identity row,
    whose outputs follow the input frames, so they flicker less than the style's own row. --score-against
    scores the same outputs against another model's style image."""
    clip = make_video(tmp_path / "clip.mp4", frames=6, width=96, height=64, audio=None)
    errors, terms = [], []
    for n, extra in enumerate(([], ["--strength", "0"], ["--score-against", str(_judge_with_other_image(tmp_path))])):
        out_csv = tmp_path / f"f{n}.csv"
        run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "flicker.py"), "--video", str(clip), "--size",
                              "96", "--style", "starry_night", "--style-frames", "1", "--csv", str(out_csv), *extra],
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        row = list(csv.DictReader(out_csv.open()))[1]
        assert row["style"] == ("starry_night s=0" if n == 1 else "starry_night")
        errors.append(float(row["warp_error"]))
        terms.append(float(row["style_term"]))
    assert errors[1] < errors[0]
    # --score-against: the same outputs, scored against the judge's image for starry_night (the scream)
    assert errors[2] == errors[0] and terms[2] > 0 and abs(terms[2] - terms[0]) > 0.05 * terms[0]


def _judge_with_other_image(tmp_path: Path) -> Path:
    """The bundled model, but its starry_night row names the_scream's image as its style image."""
    import dataclasses
    import hashlib

    from fastst.modelfile import load_model, save_model

    model = load_model()
    scream = hashlib.sha256((ROOT / "datasets/samples/styles/the_scream.jpg").read_bytes()).hexdigest()
    styles = [s if s.name != "starry_night" else dataclasses.replace(s, sha256=scream) for s in model.styles]
    return save_model(tmp_path / "judge.fst", model.net, styles, model.config, default_strength=model.default_strength)


def test_style_frames_leave_blank_frames_out():
    """The style term's frames: spread over the clip, a black frame never among them."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from flicker import style_frames
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    rng = np.random.default_rng(0)
    frames = [np.zeros((8, 8, 3), np.uint8)] + [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(9)]
    assert list(style_frames(frames, 3)) == [1, 5, 9]
    assert list(style_frames(frames[:1], 3)) == [0]  # only blank frames: measured all the same


@pytest.mark.parametrize("flag", ["--model", "--score-against"])
def test_flicker_benchmark_refuses_a_broken_model_in_one_line(tmp_path, flag):
    broken = tmp_path / "broken.fst"
    broken.write_bytes(b"not a model")
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "flicker.py"), flag, str(broken), "--video",
                          str(tmp_path / "clip.mp4")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines() == [f"flicker: {broken}: not a fastst model file (not a PyTorch weights "
                                               "file, or damaged)"], run.stderr
