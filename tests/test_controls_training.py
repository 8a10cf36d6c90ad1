"""Training the rows behind strength and stroke: an identity row and style-size rows, added to a trained
model with --only-norms (its styles' outputs stay bit-identical), and --exclude."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import synthetic_image, write_png
from fastst.cli import main
from fastst.data import StyleDataModule
from fastst.errors import FaststError
from fastst.modelfile import StyleInfo, load_model, save_model
from fastst.transformer import TransformerNet

TINY = ["--image-size", "32", "--batch-size", "2", "--checkpoint-every", "2", "--preview-every", "2", "--seed", "3"]


@pytest.fixture
def base_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = TransformerNet(2, width=8)
    with torch.no_grad():
        for norm in net.norms():
            norm.scale.uniform_(0.5, 1.5)
            norm.shift.uniform_(-0.3, 0.3)
    return save_model(tmp_path / "base.fst", net, [StyleInfo("a", style_size=64), StyleInfo("b", style_size=64)])


def outputs(model, names: list[str]) -> list[torch.Tensor]:
    x = synthetic_image(36, 44, seed=4).unsqueeze(0)
    with torch.no_grad():
        return [model.net(x, torch.tensor([model.mix(n, 1.0).weights])) for n in names]


def test_only_norms_adds_an_identity_row_and_keeps_every_style_bit_identical(tmp_path, base_model, photo_dir):
    out = tmp_path / "with_identity.fst"
    assert main(["train", "--init", str(base_model), "--only-norms", "--identity", "--data", str(photo_dir),
                 "--out", str(out), "--steps", "4", "--lr", "0.05", *TINY]) == 0
    base, model = load_model(base_model), load_model(out)
    assert [(s.name, s.kind) for s in model.styles] == [("a", "style"), ("b", "style"), ("identity", "identity")]
    for before, after in zip(outputs(base, ["a", "b"]), outputs(model, ["a", "b"])):
        assert torch.equal(before, after)
    assert torch.equal(model.net.skip[:2], torch.zeros(2, 3))  # the style rows' input skips stay closed
    assert not torch.allclose(model.net.skip[2], torch.full((3,), 0.5))  # the identity row's trained
    x = synthetic_image(36, 44, seed=4).unsqueeze(0)
    with torch.no_grad():
        photo_like = model.net(x, torch.tensor([model.mix("a", 0.0).weights]))
        painted = model.net(x, torch.tensor([model.mix("a", 1.0).weights]))
    assert (photo_like - x).abs().mean() < (painted - x).abs().mean()


def test_style_sizes_train_one_row_per_size_in_one_group(tmp_path, photo_dir):
    style = write_png(tmp_path / "style.png", synthetic_image(96, 96, seed=9))
    out = tmp_path / "sizes.fst"
    assert main(["train", "--style", f"s={style}", "--style-sizes", "48,96", "--data", str(photo_dir),
                 "--out", str(out), "--steps", "1", "--width", "8", *TINY]) == 0
    model = load_model(out)
    assert [(s.name, s.group, s.style_size) for s in model.styles] == [("s@48", "s", 48), ("s@96", "s", 96)]
    assert model.mix("s", stroke=0.25).weights == [0.75, 0.25]


def test_only_norms_adds_a_style_size_row_started_from_its_style(tmp_path, base_model, photo_dir):
    style = write_png(tmp_path / "style.png", synthetic_image(96, 96, seed=9))
    out = tmp_path / "stroke.fst"
    assert main(["train", "--init", str(base_model), "--only-norms", "--style", f"a={style}", "--style-sizes", "96",
                 "--data", str(photo_dir), "--out", str(out), "--steps", "1", "--lr", "1e-9", *TINY]) == 0
    base, model = load_model(base_model), load_model(out)
    assert [(s.name, s.group, s.style_size) for s in model.styles] == [("a", None, 64), ("b", None, 64),
                                                                       ("a@96", "a", 96)]
    assert torch.equal(outputs(base, ["a"])[0], outputs(model, ["a"])[0])
    # a learning rate of 1e-9 leaves the new row where it started: at the style's own row
    torch.testing.assert_close(model.net.down[0].norm.scale[2], model.net.down[0].norm.scale[0], atol=1e-6, rtol=0)
    assert model.mix("a", stroke=1).weights == [0, 0, 1]


def test_exclude_leaves_photos_out(tmp_path, photo_dir):
    data = StyleDataModule(photo_dir, 32, exclude=["a/p1.png", str(photo_dir / "b" / "p0.png")])
    data.setup("fit")
    assert sorted(f.name for f in data.files) == ["p2.png", "p3.png", "p4.png", "p5.png"]
    with pytest.raises(FaststError, match="every photo is excluded"):
        StyleDataModule(photo_dir, 32, exclude=[f"{d}/p{i}.png" for i in range(6) for d in "ab"]).setup("fit")


def test_exclude_list_and_identity_errors_are_one_line(tmp_path, photo_dir, capsys):
    out = tmp_path / "m.fst"
    assert main(["train", "--data", str(photo_dir), "--out", str(out)]) == 2
    assert "give at least one --style image (or --identity, or --init MODEL" in capsys.readouterr().err
    assert main(["train", "--identity", "--data", str(photo_dir), "--out", str(out),
                 "--exclude", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert "missing.txt: no such --exclude list" in err and len(err.strip().splitlines()) == 1


def test_only_norms_adds_strength_rows_between_identity_and_style(tmp_path, base_model, photo_dir):
    with_identity = tmp_path / "with_identity.fst"
    assert main(["train", "--init", str(base_model), "--only-norms", "--identity", "--data", str(photo_dir),
                 "--out", str(with_identity), "--steps", "2", *TINY]) == 0
    style = write_png(tmp_path / "style.png", synthetic_image(64, 64, seed=9))
    out = tmp_path / "strength.fst"
    assert main(["train", "--init", str(with_identity), "--only-norms", "--strength-rows", "0.3,0.6", "--style",
                 f"a={style}", "--style-size", "64", "--data", str(photo_dir), "--out", str(out), "--steps", "1",
                 "--lr", "1e-9", *TINY]) == 0
    base, model = load_model(with_identity), load_model(out)
    assert [(s.name, s.kind, s.group, s.strength) for s in model.styles][3:] == [
        ("a~0.3", "strength", "a", 0.3), ("a~0.6", "strength", "a", 0.6)]
    for before, after in zip(outputs(base, ["a", "b", "identity"]), outputs(model, ["a", "b", "identity"])):
        assert torch.equal(before, after)
    # a learning rate of 1e-9 leaves each new row where the straight path put it
    for norm in model.net.norms():
        torch.testing.assert_close(norm.scale[4], torch.lerp(norm.scale[2], norm.scale[0], 0.6), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.net.skip[3], torch.lerp(model.net.skip[2], model.net.skip[0], 0.3), atol=1e-5, rtol=0)
    assert model.mix("a", 0.6).weights == [0, 0, 0, 0, 1]


def test_strength_rows_errors_are_one_line(tmp_path, base_model, photo_dir, capsys):
    style = write_png(tmp_path / "style.png", synthetic_image(64, 64, seed=9))
    out = tmp_path / "m.fst"
    common = ["--style", f"a={style}", "--style-size", "64", "--data", str(photo_dir), "--out", str(out), *TINY]
    assert main(["train", "--init", str(base_model), "--strength-rows", "0.5", *common]) == 2
    assert "--strength-rows adds rows" in capsys.readouterr().err
    assert main(["train", "--init", str(base_model), "--only-norms", "--strength-rows", "0.5", *common]) == 2
    err = capsys.readouterr().err
    assert "has no identity row" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--init", str(base_model), "--only-norms", "--strength-rows", "1.5", *common]) == 2
    assert "distinct strengths between 0 and 1" in capsys.readouterr().err
    assert not out.exists()
