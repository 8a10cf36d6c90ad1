"""The fast stylizer: network shape and blending, training loss, resume, DDP, data order, bad input."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from conftest import synthetic_image, write_png
from fastst.cli import main
from fastst.data import ResumableSampler, StyledCrops, readable_images
from fastst.errors import FaststError
from fastst.images import load_image
from fastst.modelfile import load_model
from fastst.training import (
    StyleTransferModule,
    TrainConfig,
    checkpoint_to_model,
    keep_metrics_history,
    metrics_parts,
    plot_losses,
    read_metrics,
    train,
)
from fastst.transformer import TransformerNet, style_vector
from references import CaffeVGG16, perceptual_terms

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
    vgg = CaffeVGG16()
    targets = [load_image(p, size=96).unsqueeze(0) for p in styles]  # the style images at the style size

    def reference_loss() -> float:
        """The batch's loss by the reference implementation: the mean of the two samples' losses."""
        with torch.no_grad():
            out = module.net(images, torch.eye(2))
        return sum(perceptual_terms(vgg, out[i:i + 1], images[i:i + 1], targets[i], cfg.content_layers,
                                    cfg.style_layers, (cfg.content_weight, cfg.style_weight, cfg.tv_weight))["loss"]
                   for i in range(2)) / 2

    start = reference_loss()
    losses = []
    for _ in range(30):
        loss = module.losses(images, styles_idx)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[0] == pytest.approx(start, rel=1e-5)  # the module's loss is the objective (measured 3e-7)
    # measured: 30 Adam steps bring the reference loss to 0.242 of the start; at least 80 % of that decrease
    end = reference_loss()
    assert end < (1 - 0.8 * (1 - 0.242)) * start
    # each sample trained in its own style: both styles' norm rows moved, and the module's loss of the
    # trained network (sample i in style i) is still the reference's
    for norm in module.net.norms():
        assert (norm.scale.detach() - 1).abs().amax(dim=1).min() > 1e-3
    with torch.no_grad():
        assert float(module.losses(images, styles_idx)["loss"]) == pytest.approx(end, rel=1e-4)


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


def _crop_areas(tmp_path, scale: tuple[float, float] | None, n: int = 40) -> list[float]:
    """Area fractions of n random crops of a 120x90 photo whose channels 0 and 1 hold each pixel's x and y
    (0..1), read back from the crops' coordinate ranges (the 32-px crops are resized, the ranges are not)."""
    h, w = 90, 120
    xs, ys = torch.linspace(0, 1, w).expand(h, w), torch.linspace(0, 1, h)[:, None].expand(h, w)
    path = write_png(tmp_path / "coords.png", torch.stack([xs, ys, torch.zeros(h, w)]))
    crops = StyledCrops([path], 32, num_styles=1, seed=1, **({} if scale is None else {"scale": scale}))
    areas = []
    for k in range(n):
        crop = crops[k][0]
        areas.append(float((crop[0].max() - crop[0].min()) * (crop[1].max() - crop[1].min())))
    return areas


def test_crop_scale_sets_how_much_of_the_photo_a_crop_covers(tmp_path):
    default, wide = _crop_areas(tmp_path, None), _crop_areas(tmp_path, (0.7, 1.0))
    assert min(default) < 0.5 and max(default) > 0.8  # the default 0.35-1 spans small and whole-photo crops
    assert min(wide) > 0.6, wide  # 0.7-1 (a square fallback covers 3/4 of this 4:3 photo; pixel rounding)
    assert TrainConfig(crop_scale=[0.7, 1]).to_dict()["crop_scale"] == [0.7, 1.0]
    for bad in ((0.0, 1.0), (0.8, 0.5), (0.5, 1.5), (float("nan"), 1.0), (0.5,)):
        with pytest.raises(FaststError, match="crop scale"):
            TrainConfig(crop_scale=bad)


def test_a_framed_style_image_is_measured_and_warned_about(tmp_path, caplog):
    """A scan's flat frame (the untrimmed Starry Night scan has one) is found to the pixel in a PNG and within
    3 px through JPEG ringing; a frame on two or more sides warns, a flat band on one side does not."""
    from fastst.images import load_image, save_image, uniform_border
    from fastst.training import warn_if_framed

    painting = synthetic_image(80, 96, seed=4)
    framed = torch.zeros(3, 90, 114)
    framed[:, 5:85, 9:105] = painting
    assert uniform_border(load_image(write_png(tmp_path / "framed.png", framed))) == (5, 5, 9, 9)
    jpeg = save_image(framed, tmp_path / "framed.jpg", quality=90)
    measured = uniform_border(load_image(jpeg))
    assert all(t - 3 <= m <= t for m, t in zip(measured, (5, 5, 9, 9))), measured  # ringing eats the inner pixels
    assert uniform_border(painting) == (0, 0, 0, 0)
    with caplog.at_level("WARNING", logger="fastst"):
        assert warn_if_framed(jpeg, load_image(jpeg))
        assert not warn_if_framed("plain.png", painting)
        sky = painting.clone()
        sky[:, :20] = torch.tensor([0.3, 0.5, 0.9])[:, None, None]  # a flat band on one side only
        assert uniform_border(sky)[0] == 20 and not warn_if_framed("sky.png", sky)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "framed.jpg: flat border" in warnings[0] and "trim" in warnings[0]


def test_train_resume_and_convert(tmp_path, photo_dir, capfd):
    import logging
    import warnings

    style = write_png(tmp_path / "style.png", synthetic_image(64, 64, seed=9))
    out = tmp_path / "m.fst"
    logs = tmp_path / "logs"
    filters, level = list(warnings.filters), logging.getLogger("lightning.pytorch").level
    train([style], photo_dir, out, TINY, log_dir=logs, accelerator="cpu", devices=1, progress=False)
    # no global side effects: the run's warning filters and quieter Lightning logs end with it
    assert warnings.filters == filters and logging.getLogger("lightning.pytorch").level == level
    model = load_model(out)
    assert model.style_names == ["style"] and model.config["steps_done"] == 2
    assert model.config["crop_scale"] == [0.35, 1.0]
    assert (logs / "previews").is_dir() and any((logs / "previews").iterdir())
    last = logs / "checkpoints" / "last.ckpt"
    assert last.is_file()
    cfg4 = TrainConfig(**{**TINY.to_dict(), "steps": 4})
    capfd.readouterr()
    train([style], photo_dir, out, cfg4, log_dir=logs, resume=last, accelerator="cpu", devices=1, progress=True)
    assert load_model(out).config["steps_done"] == 4
    bar = "".join(capfd.readouterr())  # the resumed leg's bar counts from step 2 to the run's 4 (Lightning leaves the total out)
    assert "resumed at step 2" in bar and "4/4 [" in bar and "?" not in bar.rsplit("resumed", 1)[-1], bar[-500:]
    assert (logs / "losses.png").is_file()
    # the first leg's logged losses survive the resume (Lightning's CSV logger deletes metrics.csv)
    assert (logs / "metrics.part0.csv").is_file()
    steps = [int(r["step"]) for r in read_metrics(logs / "metrics.csv")]
    assert steps == sorted(steps) and min(steps) < 2 <= max(steps), steps
    converted = checkpoint_to_model(logs / "checkpoints" / "last.ckpt", tmp_path / "c.fst")
    m = load_model(converted)
    assert m.config["steps_done"] == 4
    x = synthetic_image(36, 44).unsqueeze(0)
    assert torch.allclose(m.net(x, style_vector(1)), load_model(out).net(x, style_vector(1)), atol=1e-6)


def test_validation_scores_held_out_photos_at_checkpoints_and_at_the_end(tmp_path, photo_dir, caplog, capsys):
    """--val-data: whole held-out photos in every style, at every checkpoint and after the last step;
    the logged figures are the saved network's loss on those photos, by the reference objective."""
    from fastst.images import resize_long_side

    styles = [write_png(tmp_path / f"s{i}.png", synthetic_image(64, 64, seed=20 + i)) for i in range(2)]
    val = tmp_path / "val"
    val.mkdir()
    photos = [write_png(val / "v0.png", synthetic_image(40, 56, seed=31)),
              write_png(val / "v1.png", synthetic_image(50, 36, seed=32))]
    cfg = TrainConfig(**{**TINY.to_dict(), "steps": 3, "checkpoint_every": 2})
    logs, out = tmp_path / "logs", tmp_path / "m.fst"
    train(styles, photo_dir, out, cfg, log_dir=logs, accelerator="cpu", devices=1, precision="32-true",
          progress=False, val_data=val)
    rows = [r for r in read_metrics(logs / "metrics.csv") if r.get("val/loss")]
    # after step 2 (the checkpoint) and step 3 (the end), logged like the training losses at 0-based indices
    assert [int(r["step"]) for r in rows] == [1, 2]
    model = load_model(out)
    saved = model.config["validation"]
    assert saved["photos"] == 2 and saved["step"] == 3
    # the saved network's loss on each photo in each style, by the reference implementation of the objective
    vgg = CaffeVGG16()
    weights = (cfg.content_weight, cfg.style_weight, cfg.tv_weight)
    assert (cfg.content_layers, cfg.style_layers, weights) == (("relu2_2",), ("relu1_2", "relu2_2", "relu3_3",
                                                                                 "relu4_3"), (1.0, 5.0, 1e4))
    per_style = [[], []]
    with torch.no_grad():
        for p in photos:
            x = resize_long_side(load_image(p), cfg.image_size).unsqueeze(0)
            for s in range(2):
                w = torch.nn.functional.one_hot(torch.tensor([s]), 2).float()
                terms = perceptual_terms(vgg, model.net(x, w), x, load_image(styles[s]).unsqueeze(0),
                                         cfg.content_layers, cfg.style_layers, weights)
                per_style[s].append(terms["loss"])
    expected = {f"loss_s{s}": sum(v) / 2 for s, v in enumerate(per_style)}
    expected["loss"] = (expected["loss_s0"] + expected["loss_s1"]) / 2
    for key, value in expected.items():
        assert saved[key] == pytest.approx(value, rel=1e-4), key
        assert float(rows[-1][f"val/{key}"]) == pytest.approx(value, rel=1e-4), key
    assert saved["loss_s0"] != pytest.approx(saved["loss_s1"], rel=1e-3)  # the styles are scored apart
    assert (logs / "losses.png").is_file()
    caplog.clear()  # validation photos that the run also trains on: said, not refused
    train(styles, photo_dir, tmp_path / "m2.fst", TrainConfig(**{**TINY.to_dict(), "steps": 1}), log_dir=tmp_path / "l2",
          accelerator="cpu", devices=1, progress=False, val_data=photo_dir)
    assert "also a training photo" in caplog.text
    assert load_model(tmp_path / "m2.fst").config["validation"]["photos"] == 6
    capsys.readouterr()  # the command line prints the saved figures
    assert main(["styles", str(out)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("validation:")][0]
    assert f"loss {saved['loss']:.4g} on 2 held-out photo(s) at step 3" in line and f"s1 {saved['loss_s1']:.4g}" in line


def test_preset_quick_starts_from_the_pretrained_model_unless_told_otherwise(tmp_path, photo_dir, capsys):
    """Like Turi Create, the quick preset fine-tunes the bundled network; --init none, --width or --resume
    train from scratch (or from the checkpoint)."""
    from fastst.pretrained import pretrained_path

    style = write_png(tmp_path / "mosaic.png", synthetic_image(64, 64, seed=5))
    tiny = ["--image-size", "32", "--batch-size", "2", "--steps", "1", "--checkpoint-every", "1", "--preview-every", "1"]
    base = ["train", "--preset", "quick", "--style", str(style), "--data", str(photo_dir), *tiny]
    pretrained = load_model(pretrained_path())
    assert main([*base, "--out", str(tmp_path / "a.fst")]) == 0
    assert "starts from the bundled pretrained model" in capsys.readouterr().out
    a = load_model(tmp_path / "a.fst")
    assert a.config["init"] == {"model": pretrained.path.name, "steps_done": pretrained.config["steps_done"],
                                "new_styles": ["mosaic"]}
    assert a.config["steps_done"] == pretrained.config["steps_done"] + 1
    for i, extra in enumerate((["--init", "none"], ["--width", "16"])):
        assert main([*base, "--out", str(tmp_path / f"b{i}.fst"), *extra]) == 0
        assert "starts from the bundled" not in capsys.readouterr().out
        b = load_model(tmp_path / f"b{i}.fst")
        assert "init" not in b.config and b.config["steps_done"] == 1, extra
    # --resume continues its checkpoint, which already counts the pretrained model's steps
    assert main([*base, "--out", str(tmp_path / "a.fst"), "--steps", "2", "--overwrite",
                 "--resume", str(tmp_path / "a_logs" / "checkpoints" / "last.ckpt")]) == 0
    assert load_model(tmp_path / "a.fst").config["steps_done"] == pretrained.config["steps_done"] + 2


def test_cosine_schedule_decays_the_rate_and_continues_after_resume(tmp_path, photo_dir):
    """--lr-schedule cosine: lr·(1 + cos(π·step/steps))/2 at each step; a run resumed with more steps
    continues from its step on the longer decay instead of restarting it."""
    import math

    style = write_png(tmp_path / "style.png", synthetic_image(64, 64, seed=9))
    logs, out = tmp_path / "logs", tmp_path / "m.fst"
    cosine = {**TINY.to_dict(), "lr_schedule": "cosine", "lr": 1e-3}
    train([style], photo_dir, out, TrainConfig(**cosine), log_dir=logs, accelerator="cpu", devices=1, progress=False)
    train([style], photo_dir, out, TrainConfig(**{**cosine, "steps": 4}), log_dir=logs, resume=logs / "checkpoints" / "last.ckpt",
          accelerator="cpu", devices=1, progress=False)
    rates = {int(r["step"]): float(r["train/lr"]) for r in read_metrics(logs / "metrics.csv")}
    expected = {0: 1e-3, 1: 1e-3 * 0.5 * (1 + math.cos(math.pi / 2)),  # the first leg: 2 steps
                2: 1e-3 * 0.5 * (1 + math.cos(math.pi * 2 / 4)), 3: 1e-3 * 0.5 * (1 + math.cos(math.pi * 3 / 4))}
    assert rates == pytest.approx(expected)
    assert load_model(out).config["lr_schedule"] == "cosine"
    with pytest.raises(FaststError, match="schedule"):
        TrainConfig(lr_schedule="linear")


def test_init_from_a_model_keeps_its_styles_and_adds_new_ones(tmp_path, photo_dir):
    a = write_png(tmp_path / "a.png", synthetic_image(64, 64, seed=9))
    b = write_png(tmp_path / "b.png", synthetic_image(64, 64, seed=11))
    base = tmp_path / "base.fst"
    train([a], photo_dir, base, TINY, log_dir=tmp_path / "l0", accelerator="cpu", devices=1, progress=False)
    source = load_model(base)
    with torch.no_grad():  # a distinctive style row, so that copying it is visible
        for norm in source.net.norms():
            norm.scale.uniform_(0.5, 1.5)
            norm.shift.uniform_(-0.5, 0.5)

    # warm_start itself: convs copied, 'a' copied into row 1, the new 'b' starts from the mean style
    net = TransformerNet(2)
    from fastst.training import warm_start
    assert warm_start(net, ["b", "a"], source) == ["b"]
    for mine, theirs in zip(net.norms(), source.net.norms()):
        assert torch.equal(mine.scale[1], theirs.scale[0]) and torch.equal(mine.shift[0], theirs.shift.mean(0))
    assert torch.equal(net.down[0].conv.weight, source.net.down[0].conv.weight)

    # only the norms train: every conv weight of the result equals the starting model's, and the
    # model's own style 'a' (not trained in this run) comes through exactly, beside the new 'b'
    frozen = TrainConfig(**{**TINY.to_dict(), "only_norms": True, "lr": 1e-2})
    out = tmp_path / "added.fst"
    train([b], photo_dir, out, frozen, log_dir=tmp_path / "l1", accelerator="cpu", devices=1, progress=False,
          init=base)
    added = load_model(out)
    assert added.style_names == ["a", "b"] and added.config["steps_done"] == 4
    assert added.config["styles"] == ["a", "b"]
    assert added.config["init"] == {"model": "base.fst", "steps_done": 2, "new_styles": ["b"]}
    start = load_model(base).net
    convs = [(n, p) for n, p in added.net.named_parameters() if not n.endswith((".scale", ".shift")) and n != "skip"]
    assert convs and all(torch.equal(p, start.get_parameter(n)) for n, p in convs)
    for mine, theirs in zip(added.net.norms(), start.norms()):
        assert torch.equal(mine.scale[0], theirs.scale[0]) and torch.equal(mine.shift[0], theirs.shift[0])
    assert not torch.equal(added.net.down[0].norm.scale[1], start.down[0].norm.scale.mean(0))  # 'b' trained
    x = synthetic_image(48, 48, seed=3).unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(added.net(x, style_vector(2, 0)), start(x, style_vector(1, 0)), atol=1e-6)
    assert load_model(checkpoint_to_model(tmp_path / "l1" / "checkpoints" / "last.ckpt",
                                          tmp_path / "c.fst")).config["steps_done"] == 4  # counts the init's steps

    # a full fine-tune moves the convs too; the bundled model is a valid start
    out2 = tmp_path / "tuned.fst"
    train([a], photo_dir, out2, TINY, log_dir=tmp_path / "l2", accelerator="cpu", devices=1, progress=False,
          init="pretrained")
    tuned = load_model(out2)
    assert tuned.config["init"]["model"] == load_model(None).path.name and tuned.config["init"]["new_styles"] == ["a"]
    assert not torch.equal(tuned.net.down[0].conv.weight, load_model(None).net.down[0].conv.weight)


def test_a_wider_run_grows_an_init_model_without_changing_what_it_computes(tmp_path, photo_dir):
    """--width W --init M: M's weights fill the first channels, the extra channels' outgoing weights
    start at zero, so the grown network computes exactly M's outputs before training moves it;
    later runs from the grown model or its checkpoint keep its width, and narrowing is refused."""
    from fastst.training import warm_start

    style = write_png(tmp_path / "a.png", synthetic_image(64, 64, seed=9))
    base = tmp_path / "base.fst"
    train([style], photo_dir, base, TrainConfig(**{**TINY.to_dict(), "width": 8}), log_dir=tmp_path / "l0",
          accelerator="cpu", devices=1, progress=False)
    source = load_model(base)
    assert source.net.width == 8 and source.config["width"] == 8
    assert source.net.down[2].conv.weight.shape == (32, 16, 3, 3)
    with torch.no_grad():
        for norm in source.net.norms():
            norm.scale.uniform_(0.5, 1.5)
            norm.shift.uniform_(-0.5, 0.5)
    grown = TransformerNet(1, width=12)
    warm_start(grown, ["a"], source)
    x = synthetic_image(40, 52, seed=4).unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(grown(x, style_vector(1)), source.net(x, style_vector(1)), atol=1e-6)
    assert grown.residual[0].a.conv.weight[:32, 32:].abs().max() == 0  # old outputs ignore the new inputs
    assert grown.residual[0].a.conv.weight[32:].abs().min() > 0  # new outputs start random: they can learn
    with pytest.raises(FaststError, match="narrowed"):
        warm_start(TransformerNet(1, width=4), ["a"], source)

    wide = tmp_path / "wide.fst"
    train([style], photo_dir, wide, TrainConfig(**{**TINY.to_dict(), "width": 12}), log_dir=tmp_path / "l1",
          accelerator="cpu", devices=1, progress=False, init=base)
    assert load_model(wide).net.width == 12 and load_model(wide).config["width"] == 12
    again = tmp_path / "again.fst"  # no width given: the init model's
    train([style], photo_dir, again, TINY, log_dir=tmp_path / "l2", accelerator="cpu", devices=1, progress=False, init=wide)
    assert load_model(again).net.width == 12 and TINY.width is None
    resumed = tmp_path / "resumed.fst"  # nor here: the checkpoint's
    train([style], photo_dir, resumed, TrainConfig(**{**TINY.to_dict(), "steps": 3}), log_dir=tmp_path / "l2",
          resume=tmp_path / "l2" / "checkpoints" / "last.ckpt", accelerator="cpu", devices=1, progress=False)
    assert load_model(resumed).net.width == 12
    with pytest.raises(FaststError, match="has width 12, not 16"):
        train([style], photo_dir, resumed, TrainConfig(**{**TINY.to_dict(), "steps": 4, "width": 16}), log_dir=tmp_path / "l2",
              resume=tmp_path / "l2" / "checkpoints" / "last.ckpt", accelerator="cpu", devices=1, progress=False)
    assert load_model(checkpoint_to_model(tmp_path / "l2" / "checkpoints" / "last.ckpt", tmp_path / "c.fst")).net.width == 12


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
        (["--style", str(style), "--data", str(photo_dir), "--init", str(corrupt)], "corrupt.jpg"),
        (["--style", str(style), "--data", str(photo_dir), "--init", str(tmp_path / "nope.fst")], "nope.fst"),
        (["--style", str(style), "--data", str(photo_dir), "--only-norms"], "--init"),
        (["--style", str(style), "--data", str(photo_dir), "--crop-scale", "0.9", "0.2"], "crop scale"),
        (["--style", str(style), "--data", str(photo_dir), "--init", "pretrained", "--resume", str(style)], "not both"),
        (["--style", str(style), "--data", str(photo_dir), "--width", "0"], "--width must be ≥ 1"),
        (["--style", str(style), "--data", str(photo_dir), "--resume", str(style)], "not a readable checkpoint"),
        (["--style", str(style), "--data", str(photo_dir), "--init", "pretrained", "--width", "16"], "narrowed"),
        (["--style", str(style), "--data", str(photo_dir), "--val-data", str(tmp_path / "noval")], "--val-data"),
        (["--style", str(style), "--data", str(photo_dir), "--val-data", str(empty)], "no images found"),
    ]
    for extra, needle in cases:
        code, err = _run_cli(["train", *extra, "--out", str(out), "--steps", "1"], capsys)
        assert code == 2, err
        assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_gatys_objective_is_gatys_loss_rescaled(tmp_path):
    """--objective gatys: the trainer's loss of an output × the content layer's size is Gatys' objective."""
    import gatys.optimize as go
    from fastst.objectives.settings import gatys_objective

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
    from fastst.objectives.settings import gatys_objective

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


def test_metrics_history_of_a_resumed_run(tmp_path):
    def write(name: str, steps: range) -> None:
        (tmp_path / name).write_text("step,train/loss\n" + "".join(f"{i},{100 - i}\n" for i in steps))

    write("metrics.csv", range(0, 30, 10))
    keep_metrics_history(tmp_path, resuming=True)  # leg 1 kept as part 0
    assert not (tmp_path / "metrics.csv").exists() and (tmp_path / "metrics.part0.csv").is_file()
    write("metrics.csv", range(20, 50, 10))  # leg 2 resumed from step 20: its rows replace part 0's from 20 on
    keep_metrics_history(tmp_path, resuming=True)
    write("metrics.csv", range(50, 70, 10))
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [0, 10, 20, 30, 40, 50, 60]
    assert plot_losses(tmp_path / "metrics.csv", tmp_path / "losses.png") == tmp_path / "losses.png"
    keep_metrics_history(tmp_path, resuming=False)  # a fresh run in the folder starts clean
    assert metrics_parts(tmp_path) == []


def test_loss_network_is_a_frozen_submodule_left_out_of_state_dicts(tmp_path):
    """Lightning moves the loss network with the module (a registered submodule), it never trains, and
    checkpoints leave out its weights, which are rebuilt from their source: state dicts without them load."""
    style = write_png(tmp_path / "style.png", synthetic_image(64, 64, seed=9))
    module = StyleTransferModule([str(style)], ["s"], TINY.to_dict())
    assert dict(module.named_children())["lossnet"] is module.lossnet
    assert not any(p.requires_grad for p in module.lossnet.parameters())
    module.setup("fit")
    module.to(torch.float64)  # what Lightning's strategy does with a device
    assert {p.dtype for p in module.lossnet.parameters()} == {torch.float64}
    assert module.gram_relu2_2.dtype == torch.float64
    module.train()
    assert module.net.training and not module.lossnet.training
    state = module.state_dict()
    assert state and all(k.startswith("net.") for k in state)  # no loss network, no Gram targets
    other = StyleTransferModule([str(style)], ["s"], TINY.to_dict())
    other.load_state_dict(state)  # strict
    assert torch.equal(other.net.down[0].conv.weight, module.net.down[0].conv.weight.float())
    with pytest.raises(RuntimeError, match="net.down"):
        other.load_state_dict({k: v for k, v in state.items() if not k.startswith("net.down.0")})


@pytest.mark.filterwarnings("ignore:.*LeafSpec", "ignore:.*eval mode at the start of training")
def test_a_trainer_built_elsewhere_writes_the_model_file(tmp_path, photo_dir):
    """The pieces of train() compose with a plain Trainer: the DataModule finds its own photos, and the
    WriteModelFile callback writes the .fst at the end of fitting."""
    import lightning as L

    from fastst.data import StyleDataModule
    from fastst.training import WriteModelFile

    style = write_png(tmp_path / "style.png", synthetic_image(64, 64, seed=9))
    module = StyleTransferModule([str(style)], ["s"], TINY.to_dict())
    data = StyleDataModule(photo_dir, TINY.image_size, TINY.batch_size, num_styles=1, steps=TINY.steps)
    out = tmp_path / "elsewhere.fst"
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=TINY.steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[WriteModelFile(out)], default_root_dir=str(tmp_path))
    trainer.fit(module, datamodule=data)
    assert len(data.files) == 6
    model = load_model(out)
    assert model.style_names == ["s"] and model.config["steps_done"] == 2 and model.config["devices"] == 1
    x = synthetic_image(32, 40).unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(model.net(x, style_vector(1)), module.net.float().cpu()(x, style_vector(1)), atol=1e-6)


def test_train_flags_and_defaults_come_from_the_config(capsys):
    """Every TrainConfig field with a flag is a `fastst train` option whose help shows the field's
    default; an empty command line gives the dataclass's defaults."""
    import dataclasses

    from fastst.cli import build_parser
    from fastst.commands.train import build_config

    parser = build_parser()
    args = parser.parse_args(["train", "--style", "s.png", "-o", "m.fst"])
    assert build_config(args) == TrainConfig()
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(TrainConfig):
        if f.metadata["flag"] is not None:
            assert f"--{f.name.replace('_', '-')}" in text, f.name
    assert "optimizer steps [40000]" in text and "[relu1_2,relu2_2,relu3_3,relu4_3]" in text
    cfg = build_config(parser.parse_args(["train", "--style", "s.png", "-o", "m.fst", "--preset", "quick",
                                          "--steps", "7", "--crop-scale", "0.5", "1", "--only-norms"]))
    assert (cfg.steps, cfg.image_size, cfg.crop_scale, cfg.only_norms) == (7, 128, (0.5, 1.0), True)


def test_library_errors_name_settings_and_the_command_line_names_flags(tmp_path, photo_dir, capsys):
    style = write_png(tmp_path / "style.png", synthetic_image(64, 64, seed=9))
    with pytest.raises(FaststError, match="'only_norms' trains") as caught:
        train([style], photo_dir, tmp_path / "m.fst", TrainConfig(**{**TINY.to_dict(), "only_norms": True}))
    assert "--" not in str(caught.value)
    with pytest.raises(FaststError, match="'width' must be ≥ 1"):
        TrainConfig(width=0)
    with pytest.raises(FaststError, match="'val_data'"):
        train([style], photo_dir, tmp_path / "m.fst", TINY, val_data=tmp_path / "missing")
    code = main(["train", "--style", str(style), "--data", str(photo_dir), "-o", str(tmp_path / "m.fst"),
                 "--only-norms", "--batch-size", "0"])
    assert code == 2 and "--batch-size must be ≥ 1" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["vgg16", "vgg19", "resnet50"])
def test_min_side_is_the_smallest_image_the_loss_network_computes(arch, monkeypatch):
    """LossNetwork.min_side agrees with the network itself, layer by layer: an image that size a side
    passes, one a pixel thinner fails inside (VGG: 2ⁿ px after n poolings; ResNet50 pads: any size)."""
    import fastst.lossnet as lossnet
    monkeypatch.setattr(lossnet, "resolve_backbone", lambda name: (name, "imagenet", None, None))  # untrained
    everything = lossnet.LossNetwork(arch, ["layer4"] if arch == "resnet50" else ["pool5"])
    layers = everything.available if arch == "resnet50" else ["relu1_1", "relu2_2", "relu3_1", "relu4_3", "relu5_1",
                                                             "pool5"]
    expected = {"relu1_1": 1, "relu2_2": 2, "relu3_1": 4, "relu4_3": 8, "relu5_1": 16, "pool5": 32}
    for layer in layers:
        need = everything.min_side([layer])
        assert need == (1 if arch == "resnet50" else expected[layer])
        net = lossnet.LossNetwork(arch, [layer])
        assert net.min_side() == need
        with torch.no_grad():
            for shape in ((need, 40), (40, need)):
                net(torch.rand(1, 3, *shape))
                net.check_size(torch.zeros(3, *shape))
            if need > 1:
                with pytest.raises(RuntimeError):
                    net(torch.rand(1, 3, need - 1, 40))
                with pytest.raises(FaststError, match=rf"s.png: style is 40x{need - 1} px, too small for the loss "
                                                      rf"network: {arch} needs at least {need} px a side up to {layer}"):
                    net.check_size(torch.zeros(3, need - 1, 40), "s.png", "style")


def test_a_style_image_too_thin_for_the_loss_network_is_refused_before_training(tmp_path, photo_dir, capsys):
    """A panorama that its style size shrinks to a line, or a style size that leaves a wide image a few
    px high, is one line naming the image, its size and the loss network's minimum: before a step, and
    nothing written."""
    wide = write_png(tmp_path / "wide.png", synthetic_image(16, 1600))  # 64x1 px at the style size of 64
    band = write_png(tmp_path / "band.png", synthetic_image(24, 64))  # 16x6 px at a style size of 16
    out = tmp_path / "m.fst"
    for extra, needle in (([str(wide)], "wide.png: style image resized to a long side of 64 px is 64x1 px"),
                          ([str(band), "--style-size", "16"], "band.png: style image resized to a long side of 16 "
                                                              "px is 16x6 px")):
        code, err = _run_cli(["train", "--style", *extra, "--data", str(photo_dir), "--image-size", "32",
                              "--steps", "1", "--out", str(out)], capsys)
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert needle in err and "too small for the loss network: vgg16-caffe needs at least 8 px a side up to " \
                                 "relu4_3" in err, err
        assert not out.exists() and not (tmp_path / "m_logs").exists()
