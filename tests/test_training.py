"""The fast stylizer: network shape and blending, training loss, resume, DDP, data order, bad input."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import synthetic_image, write_png
from fastst.cli import main
from fastst.data import ResumableSampler, StyledCrops, readable_images
from fastst.modelfile import load_model
from fastst.training import StyleTransferModule, TrainConfig, checkpoint_to_model, train
from fastst.transformer import TransformerNet, style_vector

TINY = TrainConfig(image_size=32, batch_size=2, steps=2, checkpoint_every=1, preview_every=1, log_every=1)


def randomized_net(num_styles: int = 2, seed: int = 0) -> TransformerNet:
    torch.manual_seed(seed)
    net = TransformerNet(num_styles)
    with torch.no_grad():
        for norm in net.norms():
            norm.scale.uniform_(0.5, 1.5)
            norm.shift.uniform_(-0.5, 0.5)
    return net.eval()


@pytest.mark.parametrize("size", [(67, 131), (32, 32), (45, 21)])
def test_output_same_shape_and_range(size):
    net = randomized_net()
    x = synthetic_image(*size).unsqueeze(0)
    with torch.no_grad():
        y = net(x, style_vector(2, 0))
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_style_blending():
    net = randomized_net()
    x = synthetic_image(40, 48).unsqueeze(0)
    with torch.no_grad():
        a = net(x, torch.tensor([[1.0, 0.0]]))
        b = net(x, torch.tensor([[0.0, 1.0]]))
        first = net(x, style_vector(2, 0))
        half = net(x, style_vector(2, [0.5, 0.5]))
    assert torch.equal(a, first)
    assert (half - a).abs().mean() > 1e-3 and (half - b).abs().mean() > 1e-3
    assert torch.allclose(style_vector(2, [2.0, 2.0]), torch.tensor([[0.5, 0.5]]))


def test_training_lowers_the_loss(tmp_path):
    styles = [write_png(tmp_path / f"s{i}.png", synthetic_image(64, 64, seed=10 + i)) for i in range(2)]
    torch.manual_seed(0)
    cfg = TrainConfig(image_size=48, batch_size=2)
    module = StyleTransferModule([str(s) for s in styles], ["a", "b"], cfg.to_dict())
    module.setup("fit")
    opt = torch.optim.Adam(module.net.parameters(), lr=1e-2)
    images = torch.stack([synthetic_image(48, 48, seed=s) for s in (1, 2)])
    styles_idx = torch.tensor([0, 1])
    losses = []
    for _ in range(30):
        loss = module.losses(images, styles_idx)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3, losses


def test_sampler_resumes_the_same_order():
    full = list(ResumableSampler(7, total=30, seed=3))
    assert list(ResumableSampler(7, total=30, seed=3, start=12)) == full[12:]
    shards = [list(ResumableSampler(7, total=30, seed=3, rank=r, world=2)) for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == sorted(full)
    assert {i % 7 for i in full[:7]} == set(range(7))  # each pass visits every file


def test_crops_are_deterministic_and_styles_cycle(photo_dir):
    files, bad = readable_images(photo_dir)
    assert len(files) == 6 and bad == 0
    crops = StyledCrops(files, 32, num_styles=3, seed=5)
    ids = list(ResumableSampler(len(files), total=6, seed=5))
    a = [crops[i] for i in ids]
    b = [crops[i] for i in ids]
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b))
    assert [s for _, s in a] == [0, 1, 2, 0, 1, 2]
    assert a[0][0].shape == (3, 32, 32)


def test_train_resume_and_convert(tmp_path, photo_dir):
    style = write_png(tmp_path / "style.png", synthetic_image(64, 64, seed=9))
    out = tmp_path / "m.fst"
    logs = tmp_path / "logs"
    train([style], photo_dir, out, TINY, log_dir=logs, accelerator="cpu", devices=1, progress=False)
    model = load_model(out)
    assert model.style_names == ["style"] and model.config["steps_done"] == 2
    assert (logs / "previews").is_dir() and any((logs / "previews").iterdir())
    last = logs / "checkpoints" / "last.ckpt"
    assert last.is_file()
    cfg4 = TrainConfig(**{**TINY.to_dict(), "steps": 4})
    train([style], photo_dir, out, cfg4, log_dir=logs, resume=last, accelerator="cpu", devices=1, progress=False)
    assert load_model(out).config["steps_done"] == 4
    assert (logs / "losses.png").is_file()
    converted = checkpoint_to_model(logs / "checkpoints" / "last.ckpt", tmp_path / "c.fst")
    m = load_model(converted)
    assert m.config["steps_done"] == 4
    x = synthetic_image(36, 44).unsqueeze(0)
    assert torch.allclose(m.net(x, style_vector(1)), load_model(out).net(x, style_vector(1)), atol=1e-6)


@pytest.mark.ddp
def test_ddp_two_cpu_processes(tmp_path, photo_dir):
    style = write_png(tmp_path / "style.png", synthetic_image(64, 64, seed=9))
    out = tmp_path / "ddp.fst"
    cmd = [sys.executable, "-m", "fastst", "train", "--style", str(style), "--data", str(photo_dir), "--out", str(out),
           "--image-size", "32", "--batch-size", "1", "--steps", "2", "--accelerator", "cpu", "--devices", "2",
           "--strategy", "ddp", "--checkpoint-every", "1", "--preview-every", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    model = load_model(out)
    assert model.config["devices"] == 2 and model.config["steps_done"] == 2


def _run_cli(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def test_bad_inputs(tmp_path, photo_dir, capsys):
    style = write_png(tmp_path / "style.png", synthetic_image(64, 64))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.jpg").write_bytes(b"garbage")
    (junk / "b.png").write_bytes(b"")
    out = tmp_path / "m.fst"
    cases = [
        (["--style", str(tmp_path / "missing.png"), "--data", str(photo_dir)], "missing.png"),
        (["--style", str(corrupt), "--data", str(photo_dir)], "corrupt.jpg"),
        (["--style", str(style), "--data", str(empty)], "no images found"),
        (["--style", str(style), "--data", str(junk)], "could be read"),
        (["--style", str(style), "--data", str(photo_dir), "--style-layers", "relu1_1:x"], "must be numbers"),
        (["--style", str(style), "--data", str(photo_dir), "--objective", "gatys", "--style-layers", "relu1_1"],
         "sets the layers"),
    ]
    for extra, needle in cases:
        code, err = _run_cli(["train", *extra, "--out", str(out), "--steps", "1"], capsys)
        assert code == 2, err
        assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_gatys_objective_is_gatys_loss_rescaled(tmp_path):
    """--objective gatys: the trainer's loss of an output × the content layer's size is Gatys' objective."""
    import gatys.optimize as go
    from fastst.training import gatys_objective

    size = 64
    style = write_png(tmp_path / "style.png", synthetic_image(size, size, seed=3))
    settings = gatys_objective(size)
    cfg = TrainConfig(image_size=size, style_size=size, **settings)
    module = StyleTransferModule([str(style)], ["s"], cfg.to_dict())
    module.setup("fit")
    content = synthetic_image(size, size, seed=4).unsqueeze(0)
    out = synthetic_image(size, size, seed=5).unsqueeze(0)
    with torch.no_grad():
        trainer_loss = float(module.loss_terms(out, content, torch.tensor([0]))["loss"])
    layers = list(dict.fromkeys(settings["content_layers"] + settings["style_layers"]))
    objective = go.Objective(go.loss_network("vgg16-caffe", layers), content, [synthetic_image(size, size, seed=3)],
                             settings["content_layers"], settings["style_layers"])
    with torch.no_grad():
        gatys_total = float(objective.terms(out)["total"])
    elements = 512 * (size // 8) ** 2  # relu4_2 of a 64² image
    assert trainer_loss * elements == pytest.approx(gatys_total, rel=0.03)
    # a different β moves only the style layers' weights, in proportion
    double = gatys_objective(size, style_weight=2 * go.DEFAULT_STYLE_WEIGHT)
    assert double["style_layer_weights"] == pytest.approx([2 * w for w in settings["style_layer_weights"]])
    assert double["content_weight"] == settings["content_weight"] and double["tv_weight"] == settings["tv_weight"]


def test_layer_weights_and_objective_from_the_command_line():
    from fastst.cli import build_parser
    from fastst.commands.train import build_config
    from fastst.training import gatys_objective

    parse = build_parser().parse_args
    cfg = build_config(parse(["train", "--style", "s.png", "-o", "m.fst", "--style-layers", "relu1_1:0.5, relu2_1"]))
    assert cfg.style_layers == ("relu1_1", "relu2_1") and cfg.style_layer_weights == (0.5, 1.0)
    assert build_config(parse(["train", "--style", "s.png", "-o", "m.fst"])).style_layer_weights is None
    # the gatys objective is set for outputs of the style size (default 2 × the crop size), with the given β
    cfg = build_config(parse(["train", "--style", "s.png", "-o", "m.fst", "--objective", "gatys",
                              "--image-size", "128", "--style-weight", "1e4"]))
    expected = gatys_objective(256, style_weight=1e4)
    assert cfg.style_layer_weights == pytest.approx(expected["style_layer_weights"])
    assert cfg.content_layers == ("relu4_2",) and cfg.tv_weight == expected["tv_weight"] and cfg.style_weight == 1.0
