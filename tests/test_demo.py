"""The demo's steps in reduced form (2 training steps, tiny images), so a broken demo fails CI;
and the bundled pretrained model."""
from __future__ import annotations

import pytest
import torch

from conftest import synthetic_image
from fastst.commands.demo import run_demo
from fastst.images import edge_brightness
from fastst.modelfile import load_model
from fastst.pretrained import pretrained_path


def test_pretrained_model_loads_and_stylizes_every_style():
    model = load_model(None)
    assert model.path == pretrained_path()
    assert pretrained_path().stat().st_size <= 8 * 1024 * 1024
    assert len(model.style_names) >= 4 and "starry_night" in model.style_names
    x = synthetic_image(48, 56).unsqueeze(0)
    outputs = []
    with torch.no_grad():
        for info in model.styles:
            y = model.net(x, model.style_weights(info.name))
            assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
            if info.kind == "identity":  # the row that gives the photo back (strength 0)
                assert (y - x).abs().mean() < 0.05
                continue
            assert (y - x).abs().mean() > 0.05
            outputs.append(y)
    assert all((a - b).abs().mean() > 0.01 for i, a in enumerate(outputs) for b in outputs[i + 1:])


def test_pretrained_model_draws_no_frame():
    """A style image with a scan's border teaches the network to draw it from its padding: dark edges
    all round (the model trained on the untrimmed Starry Night had its outer 2 px at 0.1-0.4 of the
    interior's brightness). Averaged over the four sides, each style's edges must keep half of it."""
    model = load_model(None)
    x = synthetic_image(96, 128).unsqueeze(0)
    with torch.no_grad():
        for name in model.style_names:
            sides = edge_brightness(model.net(x, model.style_weights(name))[0])
            assert sum(sides) / 4 >= 0.5, (name, sides)


def test_demo_tiny(tmp_path):
    written = run_demo(tmp_path / "demo", tiny=True)
    for paths in written.values():
        for p in paths:
            assert p.exists(), p
    assert load_model(tmp_path / "demo" / "starry_quick.fst").style_names == ["starry_night"]
    assert (tmp_path / "demo" / "contact_sheet.jpg").stat().st_size > 1000
    assert len([p for p in written["export"] if p.suffix == ".onnx"]) == 2


def test_samples_found_in_the_package_first_then_the_repository(tmp_path, monkeypatch):
    from fastst import samples
    from fastst.errors import FaststError

    assert (samples.sample_styles() / "starry_night.jpg").is_file() and any(samples.sample_photos().iterdir())
    installed = tmp_path / "_samples"
    (installed / "photos").mkdir(parents=True)
    monkeypatch.setattr(samples, "_PACKAGE_COPY", installed)
    assert samples.samples_dir() == installed
    monkeypatch.setattr(samples, "_REPO_COPY", tmp_path / "nowhere")
    monkeypatch.setattr(samples, "_PACKAGE_COPY", tmp_path / "nothing")
    with pytest.raises(FaststError, match="samples are missing"):
        samples.samples_dir()
