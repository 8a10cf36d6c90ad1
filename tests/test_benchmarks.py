"""The benchmark scripts keep working: the GPU run's CPU smoke test and the peer comparison in quick
mode run as a user would start them, print their tables, write CSV, and the like-for-like inference
check (the peer re-implementation fed fastst's weights) agrees with fastst's network."""
from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _run(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_gpu_bench_and_compare_run_in_quick_mode(tmp_path):
    gpu_csv, cmp_csv = tmp_path / "gpu.csv", tmp_path / "compare.csv"
    gpu = _run("gpu_bench.py", "--device", "cpu", "--quick", "--csv", str(gpu_csv))
    assert gpu.returncode == 0, gpu.stdout[-3000:] + gpu.stderr[-3000:]
    for header in ("== inference", "== training", "== gatys", "== summary", "# loss network:"):
        assert header in gpu.stdout, (header, gpu.stdout[-3000:])
    assert "FAILED" not in gpu.stdout, gpu.stdout
    rows = list(csv.DictReader(gpu_csv.open()))
    inference = [r for r in rows if r["section"] == "inference"]
    assert {r["setting"] for r in inference} == {"64x64", "96x54"}
    assert all(float(r["rate"]) > 0 for r in rows)
    # every fp32 variant computes the same image as plain fp32 eager
    assert all(float(r["max_abs_diff"]) < 1e-4 for r in inference if "bf16" not in r["variant"]), inference
    assert any(r["section"] == "training" and r["unit"] == "ms/step" for r in rows)
    assert any(r["section"] == "gatys" and "L-BFGS 5 evaluations" in r["variant"] for r in rows)

    cmp = _run("compare.py", "--quick", "--csv", str(cmp_csv))
    assert cmp.returncode == 0, cmp.stdout[-3000:] + cmp.stderr[-3000:]
    assert "peer median [min–max]" in cmp.stdout and "speed-up" in cmp.stdout and "checks:" in cmp.stdout
    rows = list(csv.DictReader(cmp_csv.open()))
    assert [r["benchmark"] for r in rows].count("inference") == 6  # default, fp32, onnxruntime at 2 sizes
    ort = [r for r in rows if "--backend onnx" in r["fastst"]]
    assert len(ort) == 2 and all(float(r["check"].split("max|Δ| ")[1].split()[0]) < 1e-4 for r in ort), ort
    assert {r["benchmark"] for r in rows} == {"inference", "training", "gatys"}
    gatys_rows = [r for r in rows if r["benchmark"] == "gatys"]  # Gatys' layers, the tutorial's, the pyramid
    assert len(gatys_rows) == 3 and "--scales 2" in gatys_rows[2]["fastst"]
    assert all(float(r["check"].split("objective ")[1]) > 0 for r in (gatys_rows[0], gatys_rows[2]))
    for r in rows:
        assert float(r["peer_median"]) > 0 and float(r["fastst_median"]) > 0 and float(r["speedup"]) > 0
    # like for like: the peer carrying fastst's weights reproduces fastst's network up to its final conv
    diffs = [float(r["max_abs_diff"]) for r in rows if r["max_abs_diff"]]
    assert len(diffs) == 2 and max(diffs) < 1e-4, diffs


def test_gatys_speed_prints_its_rates_and_the_lbfgs_runs():
    """gatys_speed.py end to end at tiny sizes, the bf16 rows included (measured, or marked emulated)."""
    run = _run("gatys_speed.py", "--sizes", "32,48", "--repeats", "1", "--budget", "3", "--lbfgs-size", "48")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = [line.split() for line in run.stdout.splitlines() if line[:4].strip().isdigit()]
    assert [(r[0], r[1]) for r in rows] == [("32", "fp32"), ("32", "bf16"), ("48", "fp32"), ("48", "bf16")], rows
    assert float(rows[0][2]) > 0
    assert "  fp32: " in run.stdout and "fp32-scored total" in run.stdout


def test_peer_transformer_equals_fastst_network_with_its_weights():
    sys.path.insert(0, str(BENCH))
    try:
        import peers
    finally:
        sys.path.remove(str(BENCH))
    from fastst.transformer import TransformerNet, style_vector

    torch.manual_seed(0)
    net = TransformerNet(2).eval()
    with torch.no_grad():
        for n in net.norms():
            n.scale.uniform_(0.5, 1.5)
            n.shift.uniform_(-0.5, 0.5)
    captured = {}
    net.out.norm.register_forward_pre_hook(lambda m, args: captured.__setitem__("y", args[0]))  # the final conv's output
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        net(x, style_vector(2, 1))
        same = peers.johnson_from_fastst(net, style=1).eval()(x)
        other = peers.johnson_from_fastst(net, style=0).eval()(x)
    assert same.shape == captured["y"].shape
    assert float((same - captured["y"]).abs().max()) < 1e-4
    assert float((other - captured["y"]).abs().max()) > 1e-2  # the style's norm parameters were used


def test_quality_scores_the_bundled_model_and_gatys(tmp_path):
    from gatys.defaults import DEFAULT_CONTENT_WEIGHT, DEFAULT_STYLE_WEIGHT

    out = tmp_path / "quality.csv"
    run = _run("quality.py", "--quick", "--budgets", "2", "--photos-dir", str(ROOT / "datasets/samples/photos"),
               "--csv", str(out), "--sheet", str(tmp_path / "sheet.png"), "--per-layer")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {r["method"].split(" (")[0]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {"fastst model", "gatys L-BFGS 2 evals"}, rows
    for r in rows.values():
        assert float(r["objective"]) > 0 and float(r["seconds_per_image"]) > 0
        expected = DEFAULT_CONTENT_WEIGHT * float(r["content"]) + DEFAULT_STYLE_WEIGHT * float(r["style"])
        assert float(r["objective"]) == pytest.approx(expected, rel=1e-4)
    with Image.open(tmp_path / "sheet.png") as sheet:  # one row: the photo, the model's output, Gatys'
        assert sheet.width > 3 * 192 and sheet.height < 2 * 192
    per_image = list(csv.DictReader((tmp_path / "quality_images.csv").open()))
    assert len(per_image) == 2 and {r["size"] for r in per_image} == {"64"}
    for r in per_image:  # --per-layer: Gatys' five style layers, whose shares add up to the style term
        shares = [float(r[f"style_relu{k}_1"]) for k in range(1, 6)]
        assert all(x >= 0 for x in shares) and max(shares) > 0
        assert sum(shares) == pytest.approx(DEFAULT_STYLE_WEIGHT * float(r["style"]), rel=1e-4)
    assert "weighted style term per layer" in run.stdout
    # --finetune: the network trained on the photo itself does better on it than the model, and the model is unchanged
    tuned_csv = tmp_path / "tuned.csv"
    only_model = _run("quality.py", "--quick", "--budgets", "none", "--finetune", "20", "--photos-dir",
                      str(ROOT / "datasets/samples/photos"), "--csv", str(tuned_csv))
    assert only_model.returncode == 0 and "gatys L-BFGS" not in only_model.stdout, only_model.stderr[-2000:]
    tuned_rows = {r["method"].split(" (")[0]: r for r in csv.DictReader(tuned_csv.open())}
    assert set(tuned_rows) == {"fastst model", "model trained on the photo, 20 steps"}
    assert float(tuned_rows["fastst model"]["objective"]) == pytest.approx(float(rows["fastst model"]["objective"]), rel=1e-6)
    assert float(tuned_rows["model trained on the photo, 20 steps"]["objective"]) < 0.9 * float(rows["fastst model"]["objective"])
    # Johnson et al.'s protocol: Gatys from noise, whose content term is far from the photo's after 2 evaluations
    noise_csv = tmp_path / "noise.csv"
    noise = _run("quality.py", "--quick", "--budgets", "2", "--gatys-init", "noise", "--photos-dir",
                 str(ROOT / "datasets/samples/photos"), "--csv", str(noise_csv))
    assert noise.returncode == 0, noise.stderr[-2000:]
    noise_rows = {r["method"].split(" (")[0]: r for r in csv.DictReader(noise_csv.open())}
    from_noise = noise_rows["gatys L-BFGS 2 evals, noise init"]
    assert float(from_noise["content"]) > 2 * float(rows["gatys L-BFGS 2 evals"]["content"])
    # Gatys refining the model's output starts where the model ended: after 2 evaluations it is no worse
    # than the model and its content term is still the model's, not the photo-initialised run's (~0)
    refine_csv = tmp_path / "refine.csv"
    refine = _run("quality.py", "--quick", "--budgets", "2", "--gatys-init", "model", "--photos-dir",
                  str(ROOT / "datasets/samples/photos"), "--csv", str(refine_csv))
    assert refine.returncode == 0, refine.stderr[-2000:]
    refine_rows = {r["method"].split(" (")[0]: r for r in csv.DictReader(refine_csv.open())}
    refined, model_row = refine_rows["gatys L-BFGS 2 evals, from the model"], refine_rows["fastst model"]
    assert float(refined["objective"]) <= float(model_row["objective"]) * 1.01
    assert float(refined["content"]) > 0.5 * float(model_row["content"]) > 100 * float(rows["gatys L-BFGS 2 evals"]["content"])
    assert float(refined["seconds_per_image"]) > float(model_row["seconds_per_image"])
    # --strength 1, the style row itself: further from the photo than the default 0.35
    full_csv = tmp_path / "full.csv"
    full = _run("quality.py", "--quick", "--budgets", "none", "--strength", "1", "--photos-dir",
                str(ROOT / "datasets/samples/photos"), "--csv", str(full_csv))
    assert full.returncode == 0, full.stderr[-2000:]
    (full_row,) = csv.DictReader(full_csv.open())
    assert "strength 1)" in full_row["method"] and "strength 0.35)" in rows["fastst model"]["method"]
    assert float(full_row["content"]) > float(rows["fastst model"]["content"])
    assert _run("quality.py", "--strength", "nan").returncode == 2
    assert _run("quality.py", "--budgets", "0").returncode == 2
    assert _run("quality.py", "--finetune", "-1").returncode == 2
    bad_sheet = _run("quality.py", "--sheet", str(tmp_path / "sheet.txt"))
    assert bad_sheet.returncode == 2 and "sheet.txt" in bad_sheet.stderr


def test_allocator_benchmark_compares_both_settings(tmp_path):
    out = tmp_path / "allocator.csv"
    run = _run("allocator.py", "--quick", "--workloads", "gatys", "--csv", str(out))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    assert [r["setting"] for r in rows] == ["glibc default", "keep freed memory"]
    assert all(float(r["cpu_s"]) > 0 and float(r["wall_s"]) > 0 for r in rows)
    assert "with freed memory kept" in run.stdout


def test_edges_refuses_folders_without_photos_and_pads_taller_than_a_photo(tmp_path):
    """A missing or empty --photos-dir, or a --pad-bottom that a wide photo's reflection cannot give
    (a 4:1 panorama is 64 px high at --size 256), are one-line usage errors naming the problem."""
    from conftest import synthetic_image, write_png

    missing = _run("edges.py", "--photos-dir", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such folder" in missing.stderr and "Traceback" not in missing.stderr
    empty = _run("edges.py", "--photos-dir", str(tmp_path))
    assert empty.returncode == 2 and "no images found" in empty.stderr
    write_png(tmp_path / "pano.png", synthetic_image(32, 128))
    tall = _run("edges.py", "--photos-dir", str(tmp_path), "--style", "hokusai", "--pad-bottom", "100")
    assert tall.returncode == 2 and "lowest photo (64 px)" in tall.stderr and "Traceback" not in tall.stderr


def test_edges_reads_each_style_and_its_style_image():
    """benchmarks/edges.py prints, per style of the bundled model, its outputs' edge brightness (four
    sides, around 1 for a clean model) and, below Starry Night, that of the bundled style image it was
    trained on (found by hash); an unknown style is a usage error."""
    run = _run("edges.py", "--size", "64", "--photos-dir", str(ROOT / "datasets/samples/photos"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines[2:] if not line.startswith("  ")}
    assert list(rows) == ["starry_night", "the_scream", "hokusai", "village_street"], run.stdout
    assert all(len(v) == 4 and all(0 < x < 3 for x in v) for v in rows.values()), rows
    assert lines[lines.index(next(x for x in lines if x.startswith("starry_night"))) + 1].startswith("  its style image")
    bad = _run("edges.py", "--style", "nope")
    assert bad.returncode == 2 and "no style 'nope'" in bad.stderr
    assert _run("edges.py", "--size", "16").returncode == 2
    assert _run("edges.py", "--size", "64", "--pad-bottom", "32").returncode == 2  # longer than a reflection


def test_edges_turns_and_pads_the_photo_as_told():
    """edges.stylized: upside down = the network on the turned photo, turned back; --pad-bottom = the
    network on the photo with its bottom reflected further, cropped back to the photo; both run from
    the command line."""
    import torch.nn.functional as F

    from conftest import synthetic_image
    from fastst.modelfile import load_model
    sys.path.insert(0, str(BENCH))
    try:
        from edges import stylized
    finally:
        sys.path.remove(str(BENCH))

    model = load_model(None)
    x, w = synthetic_image(40, 48, seed=3), model.style_weights("hokusai")
    with torch.no_grad():
        plain = stylized(model, x, "hokusai")
        assert torch.equal(plain, model.net(x.unsqueeze(0), w)[0])
        assert torch.equal(stylized(model, x, "hokusai", upside_down=True), model.net(x.flip(-2).unsqueeze(0), w)[0].flip(-2))
        padded = stylized(model, x, "hokusai", pad_bottom=8)
        assert padded.shape == x.shape
        assert torch.equal(padded, model.net(F.pad(x.unsqueeze(0), (0, 0, 0, 8), mode="reflect"), w)[0][..., :40, :])
        assert not torch.equal(padded, plain)
    run = _run("edges.py", "--size", "64", "--style", "hokusai", "--upside-down", "--pad-bottom", "8",
               "--photos-dir", str(ROOT / "datasets/samples/photos"))
    assert run.returncode == 0 and "upside down and back, bottom padded 8 px" in run.stdout, run.stderr[-2000:]


def test_profile_and_contention_scripts_print_their_tables():
    """profile_ops.py splits operator time into categories with the copies' share (and counts oneDNN's
    hidden reorders: activations in the plain layout, none in channels-last); contention.py runs one
    worker alone and two side by side and reports their throughput."""
    prof = _run("profile_ops.py", "--only", "infer", "--size", "64", "--runs", "1", "--onednn", "--layout", "plain")
    assert prof.returncode == 0, prof.stdout[-3000:] + prof.stderr[-3000:]
    assert "## fastst.stylize 64² (" in prof.stdout
    assert "aten::mkldnn_convolution | convolution" in prof.stdout and "copies " in prof.stdout
    assert "| reorder (activation) |" in prof.stdout and "Copies including oneDNN's activation reorders" in prof.stdout
    cont = _run("contention.py", "--work", "infer", "--settings", "fastst", "--seconds", "0.5", "--size", "32")
    assert cont.returncode == 0, cont.stdout[-3000:] + cont.stderr[-3000:]
    row = next(line for line in cont.stdout.splitlines() if line.startswith("| infer | fastst's bound"))
    alone, pair = float(row.split("|")[3]), float(row.split("|")[6])
    assert alone > 0 and pair > 0


def test_unseen_photos_finds_the_webp_images_in_a_resource_file():
    """benchmarks/unseen_photos.py's scan: whole WebP images between other bytes, icons left out."""
    sys.path.insert(0, str(BENCH))
    try:
        from unseen_photos import webp_images
    finally:
        sys.path.remove(str(BENCH))

    def webp(w: int, h: int, colour: tuple[int, int, int]) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (w, h), colour).save(buf, "WEBP", lossless=True)
        return buf.getvalue()

    blob = b"qres\0\0\0\3" + webp(240, 200, (200, 30, 30)) + b"<svg/>" + webp(32, 32, (0, 0, 0)) + webp(300, 220, (10, 20, 250))
    found = webp_images(blob)
    assert [im.size for im in found] == [(240, 200), (300, 220)]
    assert found[1].getpixel((5, 5)) == (10, 20, 250)


def test_flicker_plot_divides_by_the_reference_and_refuses_bad_input(tmp_path):
    header = "clip,frames,size,model,style,temporal,warp_error,x_input,style_term,ms_per_frame\n"
    rows = ["a.avi,9,32x32,input,,0,0.001,1,,1", "a.avi,9,32x32,old.fst,starry,0,0.004,4,100,1",
            "a.avi,9,32x32,new.fst,starry,0,0.001,1,105,1", "a.avi,9,32x32,new.fst,starry,0.5,0.0005,0.5,120,1",
            "a.avi,9,32x32,new.fst,starry s=0.35,0,0.002,2,900,1"]
    data = tmp_path / "runs.csv"
    data.write_text(header + "\n".join(rows) + "\n")
    out = tmp_path / "plot.png"
    run = _run("flicker_plot.py", str(data), "--reference", "old.fst", "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert "new.fst                                  starry 0.25×/1.05×" in run.stdout
    assert "new.fst + --temporal 0.5" in run.stdout and "0.12×/1.20×" in run.stdout
    assert "new.fst at strength 0.35" in run.stdout and "0.50×/9.00×" in run.stdout
    assert out.stat().st_size > 10_000 and Image.open(out).size[0] > 500
    for args, problem in (([str(data), "--reference", "nope.fst"], "no rows of reference model 'nope.fst'"),
                          ([str(tmp_path / "missing.csv"), "--reference", "old.fst"], "missing.csv: no such file"),
                          ([str(data), "--reference", "old.fst", "-o", str(data)], "is also an input of this command"),
                          ([str(out), "--reference", "old.fst"], "not a CSV of benchmarks/flicker.py"),
                          ([str(data), "--reference", "old.fst", "-o", str(tmp_path / "no" / "p.png")],
                           "output folder does not exist")):
        bad = _run("flicker_plot.py", *args, *(["-o", str(tmp_path / "x.png")] if "-o" not in args else []))
        assert bad.returncode == 2 and problem in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_stride_phase_lines_up_its_crops_and_finds_the_four_pixel_grid(tmp_path):
    from fastst.modelfile import load_model
    sys.path.insert(0, str(BENCH))
    try:
        import stride_phase
    finally:
        sys.path.remove(str(BENCH))

    pictures = stride_phase.photos(96, 4, 2)
    assert pictures.shape == (2, 3, 100, 100)
    # a network that returns its input moves exactly with it: the crops line up, every shift costs 0
    assert stride_phase.instability(lambda x, w: x, None, pictures, 96, 4, 16) == [0.0] * 5
    model = load_model()
    values = stride_phase.instability(model.net.float(), model.style_weights("starry_night", 2), pictures, 96, 4, 16)
    assert values[0] == 0.0 and values[4] < 0.2 * min(values[1:4]), values  # the 4-px grid lines up again
    out = tmp_path / "phase.png"
    run = _run("stride_phase.py", "--style", "starry_night", "--size", "96", "--margin", "16", "--max-shift", "4",
               "--photos", "2", "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert "off-grid mean" in run.stdout and Image.open(out).size[0] > 500
    for args, problem in ((["--max-shift", "0"], "--max-shift must be at least 1 px"),
                          (["--size", "40"], "leaves nothing inside"),
                          (["--model", str(tmp_path / "none.fst")], "none.fst"),
                          (["--style", "nope"], "unknown style 'nope'")):
        bad = _run("stride_phase.py", *args)
        assert bad.returncode == 2 and problem in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
