"""Models of pytorch/examples' fast_neural_style imported with `fastst convert MODEL.pth`: the same
outputs, the commands that run and export them, and files that are not such models."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import synthetic_image, write_png
from fastst.cli import main
from fastst.inference.stylizer import Stylizer
from fastst.modelfile import load_model


def reference_net() -> nn.Module:
    """The published fast_neural_style network with its state-dict names (benchmarks/peers.py, which the
    speed comparison also runs)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from peers import JohnsonNet
    finally:
        sys.path.pop(0)
    return JohnsonNet()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    net = reference_net().eval()
    with torch.no_grad():  # a trained model's norms are far from identity, and its output spans 0-255
        for m in net.modules():
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 2.0)
                m.bias.normal_(0.0, 0.5)
        net.deconv3.conv2d.weight.mul_(40)
        net.deconv3.conv2d.bias.fill_(128)
    state = dict(net.state_dict())
    state["in1.running_mean"] = torch.zeros(32)  # old saves carry these; the example's own loader drops them
    path = tmp_path_factory.mktemp("peer") / "mosaic.pth"
    torch.save(state, path)
    return net, path


def test_imported_model_computes_what_the_original_computes(reference, tmp_path, capsys):
    net, pth = reference
    out = tmp_path / "mosaic.fst"
    assert main(["convert", str(pth), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    model = load_model(out)
    assert model.style_names == ["mosaic"] and model.net.output == "clamp"
    assert model.config["imported_from"].startswith("pytorch/examples")
    x = synthetic_image(48, 64, seed=4).unsqueeze(0)
    with torch.no_grad():
        expected = net(x * 255).clamp(0, 255) / 255
    got = Stylizer(model, device="cpu", precision="fp32").batch(x, torch.ones(1, 1))
    assert 0.05 < float(expected.std())  # the reference output is a picture, not a constant
    assert (got - expected).abs().max() < 1e-4
    assert main(["convert", str(pth), "-o", str(tmp_path / "named.fst"), "--style-name", "tiles"]) == 0
    assert load_model(tmp_path / "named.fst").style_names == ["tiles"]
    capsys.readouterr()
    assert main(["styles", str(out)]) == 0
    listing = capsys.readouterr().out
    assert "clamp output" in listing and "imported from pytorch/examples fast_neural_style (mosaic.pth)" in listing


def test_imported_model_exports_to_onnx_and_cannot_seed_training(reference, tmp_path, capsys):
    _, pth = reference
    model, onnx = tmp_path / "m.fst", tmp_path / "m.onnx"
    assert main(["convert", str(pth), "-o", str(model)]) == 0
    assert main(["export", str(model), "--onnx", str(onnx)]) == 0  # verified against PyTorch by the command
    assert onnx.is_file()
    style = write_png(tmp_path / "s.png", synthetic_image(64, 64))
    capsys.readouterr()
    assert main(["train", "--style", str(style), "--init", str(model), "--out", str(tmp_path / "t.fst"),
                 "--steps", "1"]) == 2
    assert "cannot be trained further" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["other state dict", "not a torch file", "style name for a checkpoint"])
def test_files_that_are_no_such_model_are_one_line_errors(case, tmp_path, capsys):
    path = tmp_path / ("x.ckpt" if case == "style name for a checkpoint" else "x.pth")
    if case == "not a torch file":
        path.write_bytes(b"definitely not a zip")
    else:
        torch.save({"weight": torch.zeros(3)}, path)
    argv = ["convert", str(path), "-o", str(tmp_path / "o.fst")]
    if case == "style name for a checkpoint":
        argv += ["--style-name", "x"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert {"other state dict": "not a fast_neural_style model", "not a torch file": "not a readable PyTorch file",
            "style name for a checkpoint": "--style-name is for .pth models"}[case] in err
    assert not (tmp_path / "o.fst").exists()
