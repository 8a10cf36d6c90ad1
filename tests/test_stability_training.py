"""`fastst train --stability W` (and --distill, --preset stable): tiny runs from a trained model, with
--init and --only-norms, that lower the stability loss and keep the starting model where asked."""
from __future__ import annotations

import torch

from conftest import synthetic_image, write_png
from fastst.cli import main
from fastst.modelfile import load_model
from fastst.stability import stability_term
from fastst.training import read_metrics
from fastst.transformer import style_vector

TINY = ["--image-size", "32", "--batch-size", "2", "--checkpoint-every", "4", "--preview-every", "100", "--log-every", "1"]


def _instability(net, seed: int = 0) -> float:
    x = torch.stack([synthetic_image(64, 64, seed=s) for s in (21, 22)])
    w = style_vector(net.num_styles, 0, batch=2)
    with torch.no_grad():
        return stability_term(net, x, w, net(x, w), generator=torch.Generator().manual_seed(seed)).item()


def test_stability_with_only_norms_lowers_the_flicker_and_keeps_the_convs(tmp_path, photo_dir):
    style = write_png(tmp_path / "starry_night.png", synthetic_image(64, 64, seed=5))
    out = tmp_path / "stable.fst"
    assert main(["train", "--init", "pretrained", "--only-norms", "--style", str(style), "--data", str(photo_dir),
                 "--out", str(out), *TINY, "--steps", "8", "--lr", "1e-2", "--stability", "1e4",
                 "--content-weight", "0", "--style-weight", "0", "--tv-weight", "0"]) == 0
    start, stable = load_model(None), load_model(out)
    assert stable.style_names == start.style_names and stable.config["stability"] == 1e4
    convs = [(n, p) for n, p in stable.net.named_parameters() if not n.endswith((".scale", ".shift"))]
    assert all(torch.equal(p, start.net.get_parameter(n)) for n, p in convs)
    assert _instability(stable.net) < 0.8 * _instability(start.net)
    rows = read_metrics(tmp_path / "stable_logs" / "metrics.csv")
    assert any(r.get("train/stability") for r in rows)


def test_preset_stable_distills_from_the_init_model_and_resumes(tmp_path, photo_dir, capsys):
    start = load_model(None)
    a = write_png(tmp_path / "a.png", synthetic_image(64, 64, seed=9))
    base = tmp_path / "base.fst"
    assert main(["train", "--style", str(a), "--data", str(photo_dir), "--out", str(base), *TINY, "--steps", "1",
                 "--init", "pretrained"]) == 0
    out = tmp_path / "stable.fst"
    args = ["train", "--preset", "stable", "--init", str(base), "--style", str(a), "--data", str(photo_dir),
            "--out", str(out), *TINY]
    assert main([*args, "--steps", "4"]) == 0
    stable = load_model(out)
    assert (stable.config["stability"], stable.config["distill"], stable.config["style_weight"]) == (0.5, 1.0, 0.0)
    rows = read_metrics(tmp_path / "stable_logs" / "metrics.csv")
    distill = [float(r["train/distill"]) for r in rows if r.get("train/distill")]
    assert distill[0] == 0.0 and max(distill) > 0  # the teacher is the init model itself
    assert not any(r.get("train/content") for r in rows)  # no loss network with content and style weighing 0
    # resumed, the teacher comes back from the checkpoint (no --init needed)
    last = tmp_path / "stable_logs" / "checkpoints" / "last.ckpt"
    resumed = tmp_path / "resumed.fst"
    assert main([*[x for x in args if x not in ("--init", str(base))], "--out", str(resumed), "--steps", "6",
                 "--log-dir", str(tmp_path / "stable_logs"), "--resume", str(last)]) == 0
    assert load_model(resumed).config["steps_done"] == load_model(base).config["steps_done"] + 6
    assert start.style_names == load_model(None).style_names


def test_distill_needs_an_init_model(tmp_path, photo_dir, capsys):
    style = write_png(tmp_path / "s.png", synthetic_image(64, 64, seed=1))
    assert main(["train", "--style", str(style), "--data", str(photo_dir), "--out", str(tmp_path / "m.fst"), *TINY,
                 "--steps", "1", "--distill", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--distill" in err and "--init" in err and "\n" not in err
    assert main(["train", "--style", str(style), "--data", str(photo_dir), "--out", str(tmp_path / "m.fst"),
                 "--stability", "-1"]) == 2
    assert "≥ 0" in capsys.readouterr().err


def test_preset_stable_without_styles_fine_tunes_every_row_of_the_init_model(tmp_path, photo_dir):
    """No --style: the bundled model's nine rows (styles, identity, stroke rows) all train and keep their
    table (names, kinds, groups, sizes, hashes, thumbnails) and default strength; a resumed run keeps them."""
    start = load_model(None)
    out = tmp_path / "stable.fst"
    args = ["train", "--preset", "stable", "--data", str(photo_dir), *TINY]
    assert main([*args, "--out", str(out), "--steps", "2"]) == 0
    stable = load_model(out)
    assert [s.to_dict() | {"thumbnail": None} for s in stable.styles] == \
        [s.to_dict() | {"thumbnail": None} for s in start.styles]
    assert all(torch.equal(a.thumbnail, b.thumbnail) if b.thumbnail is not None else a.thumbnail is None
               for a, b in zip(stable.styles, start.styles))
    assert stable.default_strength == start.default_strength != 1.0
    moved = [n for n, p in stable.net.named_parameters() if not torch.equal(p, start.net.get_parameter(n).float())]
    assert any(n.endswith(".weight") for n in moved)  # the convs train too, not only the norms
    last = tmp_path / "stable_logs" / "checkpoints" / "last.ckpt"
    resumed = tmp_path / "resumed.fst"
    assert main([*args, "--out", str(resumed), "--steps", "3", "--log-dir", str(tmp_path / "stable_logs"),
                 "--resume", str(last)]) == 0
    again = load_model(resumed)
    assert again.style_names == start.style_names and again.default_strength == start.default_strength


def test_a_run_without_styles_needs_a_zero_style_weight(tmp_path, photo_dir, capsys):
    out = tmp_path / "x.fst"
    assert main(["train", "--init", "pretrained", "--data", str(photo_dir), "--out", str(out), *TINY,
                 "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "style weight of 0" in err and "Traceback" not in err and not out.exists()


def test_keep_rows_with_style_images_trains_the_painting_terms_on_every_row(tmp_path, photo_dir, capsys):
    """--keep-rows with the perceptual terms: each style's image covers all its rows (both stroke sizes);
    a style left without an image is a one-line error before anything is written."""
    start = load_model(None)
    images = {name: write_png(tmp_path / f"{name}.png", synthetic_image(48, 48, seed=i))
              for i, name in enumerate(("starry_night", "the_scream", "hokusai", "village_street"))}
    out = tmp_path / "kept.fst"
    base = ["train", "--init", "pretrained", "--keep-rows", "--data", str(photo_dir), "--out", str(out), *TINY,
            "--steps", "1", "--stability", "1e5"]
    assert main([*base, "--style", f"starry_night={images['starry_night']}"]) == 2
    err = capsys.readouterr().err
    assert "the_scream, hokusai, village_street" in err and "Traceback" not in err and not out.exists()
    assert main([*base, "--identity", *[f"--style={n}={p}" for n, p in images.items()]]) == 2
    err = capsys.readouterr().err
    assert "--keep-rows" in err and "--identity" in err and "Traceback" not in err and not out.exists()
    assert main([*base, *[f"--style={n}={p}" for n, p in images.items()]]) == 0
    kept = load_model(out)
    assert kept.style_names == start.style_names and kept.default_strength == start.default_strength
    assert [(s.kind, s.group, s.style_size) for s in kept.styles] == [(s.kind, s.group, s.style_size) for s in start.styles]
    from fastst.modelfile import file_sha256
    for s in kept.styles:
        if s.kind != "identity":
            assert s.sha256 == file_sha256(images[s.group or s.name])
    rows = read_metrics(tmp_path / "kept_logs" / "metrics.csv")
    assert any(r.get("train/style") for r in rows) and any(r.get("train/stability") for r in rows)
