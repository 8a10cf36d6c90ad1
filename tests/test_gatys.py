"""Gatys baseline: optimizers, evaluation budget, CSV log, colours, blends, sweep and CLI errors."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from PIL import Image

import gatys
import gatys.optimize as go
from conftest import synthetic_image
from fastst import hardware
from fastst.colors import rgb_to_ycbcr
from fastst.images import load_image, resize_exact
from fastst.objectives.gatys import GatysObjective, NormalizedGradient
from gatys.cli import main
from references import CaffeVGG16, gatys_terms

SIZE = 64
# Gatys' default weights (α, β, γ) and normalised-gradient weights, as the documentation gives them
DEFAULT_WEIGHTS = (1.0, 5e3, 1e5)
NORMALIZED_WEIGHTS = (10.0, 100.0, 0.01)


@pytest.fixture(scope="module")
def vgg() -> CaffeVGG16:
    return CaffeVGG16()


@pytest.fixture(scope="module")
def content() -> torch.Tensor:
    return synthetic_image(48, SIZE, seed=1)


@pytest.fixture(scope="module")
def style() -> torch.Tensor:
    # a strongly coloured, high-frequency "painting": different statistics from the content
    g = torch.Generator().manual_seed(7)
    x = torch.linspace(0, 12.0, SIZE)
    stripes = 0.5 + 0.5 * torch.sin(x.view(1, -1) + 2 * x.view(-1, 1))
    return torch.stack([stripes, 0.2 + 0.3 * stripes.t(), 1 - stripes]).clamp(0, 1) * 0.8 + \
        0.2 * torch.rand(3, SIZE, SIZE, generator=g)


class _Reference:
    """A run's objective recomputed by the second implementation in `references` (torchvision's VGG16,
    the formulas of the paper), with the `.terms(image)` interface of the objective."""

    def __init__(self, vgg: CaffeVGG16, content: torch.Tensor, style: torch.Tensor, settings: dict) -> None:
        self.vgg, self.content, self.style, self.s = vgg, content, style, settings

    def terms(self, image: torch.Tensor) -> dict[str, float]:
        s = self.s
        content = resize_exact(self.content, *image.shape[-2:])  # the content and style are 64 px already
        return gatys_terms(self.vgg, content, [self.style], image, s["content_layers"], s["style_layers"],
                           (s["content_weight"], s["style_weight"], s["tv_weight"]))


def _objective(vgg: CaffeVGG16, content: torch.Tensor, style: torch.Tensor, result: go.StylizeResult) -> _Reference:
    assert max(content.shape[-2:]) == max(style.shape[-2:]) == result.settings["size"] == SIZE  # no resizing
    return _Reference(vgg, content, style, result.settings)


# Each optimizer's total after 6 evaluations as a fraction of the start, measured with the defaults on this
# content and style (fp32, 2-core AMD EPYC); a run must reach at least 80 % of that decrease.
REACHED = {"sgd": 0.854, "adadelta": 0.720, "adagrad": 0.583, "adam": 0.540, "rmsprop": 0.582, "lbfgs": 0.738}


@pytest.mark.parametrize("name", list(go.OPTIMIZERS))
def test_each_optimizer_lowers_the_loss(name, content, style, vgg):
    """Scored by the reference implementation, not by the objective the run minimised: the logged losses are
    Gatys' objective (start to 1e-5: measured 2e-7, fp32 vs fp64 sums), the returned image is the logged best."""
    result = go.stylize(content, [style], optimizer=name, iterations=6, size=SIZE, device="cpu", bf16=False)
    assert result.evaluations == len(result.rows) == 6
    reference = _objective(vgg, content, style, result)
    start, end = reference.terms(content)["total"], reference.terms(result.image)["total"]
    assert start == pytest.approx(result.rows[0]["total"], rel=1e-5)  # init content
    assert result.final["total"] == pytest.approx(end, rel=1e-5)
    bound = 1 - 0.8 * (1 - REACHED[name])
    assert end < bound * start, f"{name}: {start:.4g} -> {end:.4g} ({end / start:.3f} of the start, bound {bound:.3f})"


def test_gatys_objective_weights_each_style_layer_by_one_over_the_layer_count():
    """Gatys et al.'s style term Σ_l w_l E_l with w_l = 1/|L| and E_l = 1/(4 N_l² M_l²) Σ (G_l - A_l)², on
    feature maps small enough to do by hand: a stand-in loss network whose layer "p" is the 1x2 image itself
    (N=3, M=2) and "q" twice its red channel (N=1, M=2).
    Output x: red (1, 0), green (0, 1), blue (0, 0); style image: red (1, 1), the rest 0; content: all 0.5.
      p: G = diag(1, 1, 0), A = diag(2, 0, 0): Σ (G - A)² = 1 + 1 = 2, E_p = 2 / (4·9·4) = 1/72
      q: G = 2² = 4, A = 2² + 2² = 8: Σ (G - A)² = 16, E_q = 16 / (4·1·4) = 1
      style = ½ (1/72 + 1) = 73/144; content (layer p) = 6 · 0.5² = 1.5; tv = |0 - 1| + |1 - 0| = 2
      total with α = 1, β = 144, γ = 0.5: 1.5 + 73 + 1 = 75.5"""
    def net(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"p": x, "q": 2 * x[:, :1]}

    output = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]])
    style_image = torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]], [[0.0, 0.0]]])
    objective = GatysObjective(net, torch.full((3, 1, 2), 0.5), [style_image], ["p"], ["p", "q"],
                               content_weight=1.0, style_weight=144.0, tv_weight=0.5)
    with torch.no_grad():
        terms = {k: float(v) for k, v in objective.terms(output, per_layer=True).items()}
    assert terms["style_p"] == pytest.approx(1 / 144) and terms["style_q"] == pytest.approx(1 / 2)
    assert terms["style"] == pytest.approx(73 / 144)
    assert (terms["content"], terms["tv"]) == (pytest.approx(1.5), pytest.approx(2.0))
    assert terms["total"] == pytest.approx(75.5)


def test_init_from_an_image_file_starts_at_that_image(tmp_path, content, style, vgg):
    """--init IMAGE (neural-style's -init image): the first evaluation scores that image, resized to the output."""
    start = torch.rand(3, SIZE // 2, SIZE // 2, generator=torch.Generator().manual_seed(3))
    path = _write(tmp_path / "start.png", start)
    result = go.stylize(content, [style], init=str(path), optimizer="adam", lr=1e-3, iterations=2, size=SIZE,
                        device="cpu", bf16=False)
    objective = _objective(vgg, content, style, result)
    begin = resize_exact(load_image(path), *result.image.shape[-2:])
    with torch.no_grad():
        assert result.rows[0]["total"] == pytest.approx(float(objective.terms(begin)["total"]), rel=1e-4)
    assert (result.image - begin).abs().max() < 5e-3  # two Adam steps of 1e-3 from it
    assert result.settings["init"] == str(path)
    as_tensor = go.stylize(content, [style], init=begin, optimizer="adam", lr=1e-3, iterations=2, size=SIZE,
                           device="cpu", bf16=False)
    assert torch.allclose(as_tensor.image, result.image, atol=1e-6) and as_tensor.settings["init"] == "image"


def test_sgd_auto_learning_rate_is_recorded(content, style):
    result = go.stylize(content, [style], optimizer="sgd", iterations=2, size=SIZE, device="cpu")
    assert 0 < result.settings["lr"] < 1e-3  # scaled to the (large) gradient, not the placeholder 1.0
    result = go.stylize(content, [style], optimizer="sgd", lr=1e-12, iterations=2, size=SIZE, device="cpu")
    assert result.settings["lr"] == 1e-12


def test_total_is_weighted_sum_of_terms(content, style):
    result = go.stylize(content, [style], iterations=3, size=SIZE, content_weight=2.0, style_weight=30.0,
                        tv_weight=5.0, init="noise", device="cpu")
    for r in result.rows:
        assert r["total"] == pytest.approx(2.0 * r["content"] + 30.0 * r["style"] + 5.0 * r["tv"], rel=1e-5)
    assert result.rows[0]["content"] > 0 and result.rows[0]["style"] > 0 and result.rows[0]["tv"] > 0


def test_cli_writes_csv_with_one_row_per_evaluation(tmp_path, content, style, capsys):
    c, s = _write(tmp_path / "c.png", content), _write(tmp_path / "s.png", style)
    out = tmp_path / "out.png"
    assert main(["stylize", str(c), str(s), "-o", str(out), "--size", str(SIZE), "--iterations", "7",
                 "--device", "cpu", "--no-progress"]) == 0
    assert Image.open(out).size == (SIZE, 48)
    with open(tmp_path / "out.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    assert header == ["iteration", "seconds", "content", "style", "tv", "total"]
    assert len(rows) == 7  # L-BFGS with line search: the budget counts evaluations, not iterations
    assert [int(r[0]) for r in rows] == list(range(1, 8))
    seconds = [float(r[1]) for r in rows]
    assert seconds == sorted(seconds) and seconds[0] > 0
    assert float(rows[-1][5]) < float(rows[0][5])
    printed = capsys.readouterr().out
    assert "7 evaluations" in printed and "passes/s" in printed


@pytest.mark.parametrize("iterations", [1, 2, 5, 11])
def test_lbfgs_honours_the_evaluation_budget(iterations, content, style, tmp_path):
    log = tmp_path / "run.csv"
    result = go.stylize(content, [style], optimizer="lbfgs", iterations=iterations, size=32, device="cpu", log=log)
    assert result.evaluations == iterations
    assert len(go.read_log(log)) == iterations


def test_pyramid_spends_the_same_budget_and_ends_at_full_size(content, style):
    result = go.stylize(content, [style], iterations=5, size=SIZE, scales=2, device="cpu")
    assert go.pyramid_sizes(SIZE, 2) == [32, SIZE]
    assert result.evaluations == 5 and result.settings["scales"] == 2
    assert tuple(result.image.shape) == (3, 48, SIZE)
    assert go.split_evaluations(5, 2) == [2, 3]


def test_original_colors_keep_the_content_chroma(content, style):
    plain = go.stylize(content, [style], iterations=4, size=SIZE, device="cpu")
    kept = go.stylize(content, [style], iterations=4, size=SIZE, original_colors=True, device="cpu")
    c_ycc, k_ycc, p_ycc = rgb_to_ycbcr(content), rgb_to_ycbcr(kept.image), rgb_to_ycbcr(plain.image)
    chroma_error = (k_ycc[1:] - c_ycc[1:]).abs().mean()
    assert chroma_error < 0.01  # only clamping to [0, 1] moves it
    assert (p_ycc[1:] - c_ycc[1:]).abs().mean() > 3 * chroma_error  # without the flag the colours change
    assert (k_ycc[0] - c_ycc[0]).abs().mean() > 0.002  # and the luminance was optimised


def test_style_blend_one_zero_equals_single_style_and_seed_matters(content, style):
    other = synthetic_image(SIZE, SIZE, seed=9)
    kwargs = dict(iterations=4, size=SIZE, init="noise", device="cpu")
    single = go.stylize(content, [style], seed=3, **kwargs)
    blended = go.stylize(content, [style, other], style_blend=[1, 0], seed=3, **kwargs)
    assert torch.allclose(single.image, blended.image, atol=1e-6)
    assert single.rows[-1]["total"] == pytest.approx(blended.rows[-1]["total"], rel=1e-6)
    reseeded = go.stylize(content, [style], seed=4, **kwargs)
    assert (reseeded.image - single.image).abs().mean() > 0.01


def test_score_is_a_fixed_objective(content, style, vgg):
    s = gatys.score(content, [style], content)
    assert s["content"] == 0.0 and s["style"] > 0
    # vgg16-caffe, Gatys' layers and the documented weights, recomputed by the reference implementation
    expected = gatys_terms(vgg, content, [style], content, ["relu4_2"],
                           ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], DEFAULT_WEIGHTS)
    for key in ("style", "tv", "total"):
        assert s[key] == pytest.approx(expected[key], rel=1e-5), key
    result = go.stylize(content, [style], iterations=6, size=SIZE, device="cpu", bf16=False)
    after = gatys.score(content, [style], result.image)
    assert after["style"] < s["style"] and after["content"] > 0
    # the returned image is the logged best evaluation (not L-BFGS's last line-search point), in [0, 1]
    assert after["total"] == pytest.approx(result.final["total"], rel=1e-4)
    assert result.final["total"] == min(r["total"] for r in result.rows)


def test_local_weights_file_backbone_matches_vgg16_caffe(tmp_path, content, style):
    from fastst.backbones import load_vgg16_caffe
    state, _ = load_vgg16_caffe()
    path = tmp_path / "vgg16.pth"
    torch.save({"normalization": "caffe", "state_dict": state}, path)
    kwargs = dict(iterations=2, size=32, device="cpu", style_layers=["relu1_1", "relu2_1"], content_layers=["relu2_2"])
    a = go.stylize(content, [style], backbone="vgg16-caffe", **kwargs)
    b = go.stylize(content, [style], backbone=str(path), **kwargs)
    assert torch.allclose(a.image, b.image, atol=1e-6)


def test_normalized_gradient_has_the_weight_as_l1_norm_whatever_the_loss_scale():
    f = torch.randn(1, 4, 5, 5, requires_grad=True)
    grads = []
    for scale in (1.0, 1e6):
        f.grad = None
        (scale * (NormalizedGradient.apply(f, 3.0) - 0.5).pow(2).sum()).backward()
        grads.append(f.grad.clone())
    assert float(grads[0].abs().sum()) == pytest.approx(3.0, rel=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-9)
    expected = 2 * (f.detach() - 0.5)  # the direction of the plain gradient
    assert torch.allclose(grads[0], 3.0 * expected / expected.abs().sum(), rtol=1e-5, atol=1e-9)


def test_normalize_gradients_makes_a_run_independent_of_the_feature_scale(tmp_path, content, style):
    """neural-style's -normalize_gradients: every layer's features ×16 (first conv and all biases ×16)
    changes a plain run, not a normalised one (without TV, a pixel term that is not normalised)."""
    from fastst.backbones import load_vgg16_caffe
    state, _ = load_vgg16_caffe()
    scaled = {k: v * 16 if (k.endswith("bias") or k == "0.weight") else v for k, v in state.items()}
    path = tmp_path / "vgg16x16.pth"
    torch.save({"normalization": "caffe", "state_dict": scaled}, path)
    for optimizer in ("adam", "lbfgs"):
        kwargs = dict(iterations=4, size=32, device="cpu", bf16=False, optimizer=optimizer, init="noise",
                      style_layers=["relu1_1", "relu2_1"], content_layers=["relu2_2"])
        plain = [go.stylize(content, [style], backbone=b, content_weight=1, style_weight=5e3, tv_weight=0, **kwargs)
                 for b in ("vgg16-caffe", str(path))]
        assert (plain[0].image - plain[1].image).abs().max() > 1e-3, optimizer
        normed = [go.stylize(content, [style], backbone=b, normalize_gradients=True, tv_weight=0, **kwargs)
                  for b in ("vgg16-caffe", str(path))]
        assert torch.allclose(normed[0].image, normed[1].image, atol=1e-5), optimizer
        assert (normed[0].image - resize_exact(content, 24, 32)).abs().mean() > 1e-3, optimizer  # it did move


@pytest.mark.parametrize("name", ["adam", "lbfgs"])
def test_normalize_gradients_run_transfers_style_and_returns_its_last_image(name, content, style):
    result = go.stylize(content, [style], optimizer=name, iterations=20, size=SIZE, device="cpu", bf16=False,
                        normalize_gradients=True)
    s = result.settings
    assert s["normalize_gradients"] is True
    assert (s["content_weight"], s["style_weight"], s["tv_weight"]) == NORMALIZED_WEIGHTS
    assert result.evaluations == 20 and result.final == result.rows[-1]  # the last image, not the lowest total
    before = go.score(content, [style], content)
    after = go.score(content, [style], result.image)
    assert after["style"] < 0.5 * before["style"], (name, before["style"], after["style"])
    if name == "lbfgs":  # fixed steps: a line search on the loss stalls on gradients that are not its own
        opt = go.make_optimizer("lbfgs", [torch.zeros(1, requires_grad=True)], normalized_gradients=True)
        assert opt.defaults["line_search_fn"] is None and opt.defaults["lr"] == 0.3  # the documented step
        assert s["lr"] == 0.3
        assert go.make_optimizer("lbfgs", [torch.zeros(1, requires_grad=True)]).defaults["line_search_fn"]


def test_cli_normalize_gradients_flag(tmp_path, content, style, capsys):
    c, s = _write(tmp_path / "c.png", content), _write(tmp_path / "s.png", style)
    out = tmp_path / "o.png"
    assert main(["stylize", str(c), str(s), "-o", str(out), "--size", "32", "--iterations", "3", "--device", "cpu",
                 "--no-bf16", "--normalize-gradients", "--tv-weight", "0"]) == 0
    rows = go.read_log(tmp_path / "o.csv")
    assert len(rows) == 3 and out.exists()
    a, b, _ = NORMALIZED_WEIGHTS
    assert rows[0]["total"] == pytest.approx(a * rows[0]["content"] + b * rows[0]["style"], rel=1e-5)


def test_lbfgs_history_is_how_many_steps_lbfgs_remembers(content, style):
    """--lbfgs-history (neural-style's -lbfgs_num_correction): the optimizer's memory, which changes its steps."""
    assert go.make_optimizer("lbfgs", [torch.zeros(1, requires_grad=True)], lbfgs_history=3).defaults["history_size"] == 3
    runs = {h: go.stylize(content, [style], iterations=10, size=32, device="cpu", bf16=False, lbfgs_history=h)
            for h in (1, go.LBFGS_HISTORY)}
    assert runs[1].settings["lbfgs_history"] == 1 and runs[1].evaluations == 10
    assert (runs[1].image - runs[go.LBFGS_HISTORY].image).abs().max() > 1e-3


def test_sweep_2x2_writes_summary_plots_and_contact_sheet(tmp_path, content, style, capsys):
    c, s = _write(tmp_path / "c.png", content), _write(tmp_path / "s.png", style)
    out = tmp_path / "sweep"
    rc = main(["sweep", str(c), str(s), "--out", str(out), "--optimizers", "lbfgs", "adam",
               "--weight-ratios", "1:1e3,1:1e4", "--size", "48", "--iterations", "3", "--device", "cpu",
               "--no-progress"])
    assert rc == 0
    with open(out / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == 4
    assert {(r["optimizer"], float(r["style_weight"])) for r in summary} == \
        {("lbfgs", 1e3), ("lbfgs", 1e4), ("adam", 1e3), ("adam", 1e4)}
    for r in summary:
        assert int(r["evaluations"]) == 3 and float(r["passes_per_s"]) > 0
        assert len(go.read_log(out / r["log"])) == 3
        # the summary's losses come from the fixed scorer, not the run's own objective
        rescored = gatys.score(load_image(c), [load_image(s)], load_image(out / r["image"]))
        assert float(r["total"]) == pytest.approx(rescored["total"], rel=0.05)
    assert float(summary[0]["objective_total"]) > 0
    for name in ("plot_optimizer.png", "plot_weight_ratio.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] >= 600
    with Image.open(out / "contact_sheet.png") as im:  # content and style, then a row per optimizer: 2 x 3
        assert im.size[0] == 2 * (256 + 8) + 8 and im.size[1] > 3 * 256
    assert not list(out.glob("plot_backbone*"))  # only varied axes get a plot
    assert "4 runs" in capsys.readouterr().out


def test_snapshots_show_the_run_as_it_goes(tmp_path, content, style, vgg, capsys):
    """snapshot_every: the image at every Nth evaluation, the one the log row scored (colours restored with
    original_colors); the CLI's --save-every writes them beside the output with a progress sheet."""
    got: list[tuple[int, torch.Tensor]] = []
    result = go.stylize(content, [style], iterations=6, size=SIZE, device="cpu", bf16=False, snapshot_every=2,
                        snapshot=lambda k, image: got.append((k, image)))
    assert [k for k, _ in got] == [2, 4, 6]
    objective = _objective(vgg, content, style, result)
    for k, image in got:
        assert float(objective.terms(image)["total"]) == pytest.approx(result.rows[k - 1]["total"], rel=1e-3)
    assert (got[0][1] - got[-1][1]).abs().mean() > 1e-3
    kept: list[torch.Tensor] = []
    go.stylize(content, [style], iterations=2, size=SIZE, device="cpu", original_colors=True, snapshot_every=2,
               snapshot=lambda k, image: kept.append(image))
    assert (rgb_to_ycbcr(kept[0])[1:] - rgb_to_ycbcr(content)[1:]).abs().mean() < 0.01

    c, s = _write(tmp_path / "c.png", content), _write(tmp_path / "s.png", style)
    out = tmp_path / "out.png"
    assert main(["stylize", str(c), str(s), "-o", str(out), "--size", str(SIZE), "--iterations", "5",
                 "--save-every", "2", "--device", "cpu", "--no-progress"]) == 0
    assert sorted(p.name for p in tmp_path.glob("out_*")) == ["out_0002.png", "out_0004.png", "out_progress.jpg"]
    with Image.open(tmp_path / "out_0004.png") as im:
        assert im.size == (SIZE, 48)
    with Image.open(tmp_path / "out_progress.jpg") as im:  # two 192-px tiles side by side
        assert im.format == "JPEG" and im.size[0] == 2 * (192 + 8) + 8


def test_average_pooling_changes_the_objective_and_is_a_sweep_axis(tmp_path, content, style, capsys):
    a = go.stylize(content, [style], iterations=3, size=SIZE, device="cpu", pooling="avg")
    m = go.stylize(content, [style], iterations=3, size=SIZE, device="cpu")
    assert a.settings["pooling"] == "avg" and m.settings["pooling"] == "max"
    assert a.rows[0]["style"] != pytest.approx(m.rows[0]["style"], rel=1e-3)  # another loss network
    assert (a.image - m.image).abs().mean() > 1e-4
    c, s = _write(tmp_path / "c.png", content), _write(tmp_path / "s.png", style)
    out = tmp_path / "sweep"
    assert main(["sweep", str(c), str(s), "--out", str(out), "--poolings", "max", "avg", "--size", "32",
                 "--iterations", "2", "--device", "cpu", "--no-progress"]) == 0
    with open(out / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    assert [r["pooling"] for r in summary] == ["max", "avg"] and summary[1]["run"].endswith("avgpool")
    assert (out / "plot_pooling.png").is_file()


def _write(path: Path, t: torch.Tensor) -> Path:
    from conftest import write_png
    return write_png(path, t)


@pytest.fixture
def inputs(tmp_path, content, style):
    return _write(tmp_path / "c.png", content), _write(tmp_path / "s.png", style)


@pytest.mark.parametrize("case", ["missing", "corrupt", "layer", "optimizer", "size0", "size-neg", "blend",
                                  "sweep-optimizer", "sweep-layer", "init", "init-file", "pooling", "sweep-pooling", "save-every",
                                  "sweep-match-normalized", "lbfgs-history"])
def test_bad_inputs_give_one_line_errors(case, inputs, tmp_path, capsys):
    c, s = inputs
    out = tmp_path / "out.png"
    base = ["stylize", str(c), str(s), "-o", str(out), "--size", "32", "--iterations", "1", "--device", "cpu"]
    corrupt = tmp_path / "bad.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10)
    argv, expect = {
        "missing": (["stylize", str(tmp_path / "nope.png"), str(s), "-o", str(out)], "nope.png: no such file"),
        "corrupt": (["stylize", str(c), str(corrupt), "-o", str(out)], "bad.jpg"),
        "layer": (base + ["--content-layers", "relu9_9"], "unknown layer relu9_9"),
        "optimizer": (base + ["--optimizer", "newton"], "unknown optimizer 'newton'"),
        "size0": (base + ["--size", "0"], "size must be a positive"),
        "size-neg": (base + ["--size", "-5"], "size must be a positive"),
        "blend": (base + ["--style-blend", "1,2,3"], "3 weights for 1 style"),
        "sweep-optimizer": (["sweep", str(c), str(s), "--out", str(tmp_path / "sw"), "--optimizers", "lbfgs,nope"],
                            "unknown optimizer 'nope'"),
        "sweep-layer": (["sweep", str(c), str(s), "--out", str(tmp_path / "sw"), "--style-layer-sets", "relu1_1,bogus"],
                        "unknown layer bogus"),
        "init": (base + ["--init", "zeros"], "unknown init 'zeros'"),
        "init-file": (base + ["--init", str(tmp_path / "start.png")], "start.png: no such file"),
        "pooling": (base + ["--pooling", "median"], "unknown pooling 'median'"),
        "sweep-pooling": (["sweep", str(c), str(s), "--out", str(tmp_path / "sw"), "--poolings", "max,median"],
                          "unknown pooling 'median'"),
        "save-every": (base + ["--save-every", "-1"], "--save-every must be 0 (no snapshots) or a positive"),
        "lbfgs-history": (base + ["--lbfgs-history", "0"], "L-BFGS history must be at least 1"),
        "sweep-match-normalized": (["sweep", str(c), str(s), "--out", str(tmp_path / "sw"), "--match-weights",
                                    "--normalize-gradients"], "--match-weights has nothing to match"),
    }[case]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gatys: error: ") and expect in lines[0], err
    assert not out.exists() and not (tmp_path / "out.csv").exists() and not (tmp_path / "sw").exists()


def test_matched_weights_compensate_a_backbone_feature_scale(tmp_path, content, style, vgg, capsys):
    """Matched weights give the other backbone the default content:style:tv balance on the probe (seeded
    noise): the weighted terms, measured by the reference implementation with each backbone's input
    normalisation, stand in the same ratios as vgg16-caffe's under the default weights (to 1e-4)."""
    from fastst.backbones import load_vgg16_caffe
    same = go.matched_weights("vgg16-caffe", content, style, size=SIZE)
    assert (same["content_weight"], same["style_weight"], same["tv_weight"]) == pytest.approx(DEFAULT_WEIGHTS, rel=1e-6)
    # the Caffe weights fed torchvision's input normalisation: features ~1/30 the size
    path = tmp_path / "vgg16-imagenet-norm.pth"
    torch.save({"normalization": "imagenet", "state_dict": load_vgg16_caffe()[0]}, path)
    w = go.matched_weights(str(path), content, style, size=SIZE)
    probe = torch.rand(content.shape, generator=torch.Generator().manual_seed(0))  # the probe matched_weights uses
    layers = (["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"])
    caffe = gatys_terms(vgg, content, [style], probe, *layers, DEFAULT_WEIGHTS)
    other = gatys_terms(CaffeVGG16("imagenet"), content, [style], probe, *layers,
                        (w["content_weight"], w["style_weight"], w["tv_weight"]))
    assert other["style"] < 1e-4 * caffe["style"]  # the scale to compensate: several orders of magnitude
    a, b, g = DEFAULT_WEIGHTS
    assert w["style_weight"] * other["style"] / (w["content_weight"] * other["content"]) == pytest.approx(
        b * caffe["style"] / (a * caffe["content"]), rel=1e-4)
    assert w["tv_weight"] / (w["content_weight"] * other["content"]) == pytest.approx(g / (a * caffe["content"]),
                                                                                      rel=1e-4)
    # the CLI uses the matched weights when none is given for another backbone, and says so
    c, s = _write(tmp_path / "c.png", content), _write(tmp_path / "s.png", style)
    out = tmp_path / "o.png"
    assert main(["stylize", str(c), str(s), "-o", str(out), "--backbone", str(path), "--size", "32",
                 "--iterations", "2", "--device", "cpu", "--no-progress"]) == 0
    assert "weights matched to" in capsys.readouterr().err and out.exists()


def test_bf16_is_the_default_only_where_the_cpu_computes_it(monkeypatch):
    """One precision policy (fastst.hardware) for training, inference and optimisation on the CPU."""
    cpu = torch.device("cpu")
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    assert go.bf16_default(cpu) is True
    assert [hardware.default_precision(cpu, task) for task in hardware.TASKS] == ["bf16"] * 3
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: False)
    assert go.bf16_default(cpu) is False
    assert [hardware.default_precision(cpu, task) for task in hardware.TASKS] == ["fp32"] * 3
    assert hardware.default_precision("mps", "training") == "fp32"
    with pytest.raises(ValueError, match="task"):
        hardware.default_precision(cpu, "dreaming")


def test_bf16_run_logs_losses_close_to_the_fp32_scorer(content, style):
    result = go.stylize(content, [style], iterations=3, size=SIZE, device="cpu", bf16=True)
    assert result.settings["bf16"] is True and result.evaluations == 3
    assert result.image.dtype == torch.float32 and 0 <= float(result.image.min()) <= float(result.image.max()) <= 1
    scored = gatys.score(content, [style], result.image)
    # bf16 features round to 8 bits of mantissa: the logged loss of the returned image is within a
    # few per cent of its fp32 score, not bit-equal
    assert result.final["total"] == pytest.approx(scored["total"], rel=0.05)


def _one_error(argv: list[str], capsys, expect: str) -> str:
    """Run the gatys CLI, which must fail with exit 2 and one `gatys: error:` line holding `expect`."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("gatys: error: ") and expect in lines[0], err
    return lines[0]


def test_sweep_refuses_an_input_that_is_one_of_its_outputs(tmp_path, inputs, capsys):
    """A content, style or init image that is a file the sweep writes (a run's image or log, the summary,
    a plot, the sheet, sweep.json; by name, symlink or hard link) is refused before any work, with
    --overwrite or --resume too; inputs outside the sweep's files leave --resume working."""
    c, s = inputs
    out = tmp_path / "sw"
    base = ["--out", str(out), "--size", "32", "--iterations", "2", "--device", "cpu", "--no-progress"]
    assert main(["sweep", str(c), str(s), *base]) == 0
    capsys.readouterr()
    run_image = next((out / "runs").glob("*.png"))
    (tmp_path / "linked.png").hardlink_to(run_image)
    (tmp_path / "symlinked.png").symlink_to(run_image)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for argv in (
        [str(run_image), str(s)],
        [str(tmp_path / "linked.png"), str(s)],
        [str(tmp_path / "symlinked.png"), str(s)],
        [str(c), str(out / "runs" / (run_image.stem + ".csv"))],
        [str(c), str(out / "contact_sheet.png")],
        [str(c), str(out / "plot_optimizer.png")],
        [str(out / "summary.csv"), str(s)],
        [str(out / "sweep.json"), str(s)],
        [str(c), str(s), "--init", str(run_image)],
    ):
        for flag in ([], ["--overwrite"], ["--resume"]):
            _one_error(["sweep", *argv, *base, *flag], capsys, "is also an input of this command")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # an input inside the folder that is none of the sweep's files is read, not refused, and --resume works
    other = _write(out / "runs" / "my_content.png", load_image(c))
    kept = other.read_bytes()
    assert main(["sweep", str(other), str(s), *base, "--overwrite"]) == 0
    assert main(["sweep", str(other), str(s), *base, "--resume"]) == 0
    assert other.read_bytes() == kept


@pytest.mark.parametrize("case", ["thin-style", "style-scale", "thin-content", "sweep-thin-style",
                                  "sweep-scorer"])
def test_images_too_small_for_the_loss_network_are_one_line_errors(case, inputs, tmp_path, capsys):
    """An image that a loss network's poolings would shrink to nothing (a thin panorama, a small
    --style-scale, a thin content photo) is refused in one line naming the file, its size after resizing
    and the minimum, before any optimisation and with nothing written, by the network that needs it:
    a run's own, or for a sweep also the fixed scorer (vgg16-caffe, relu5_1: 16 px)."""
    c, s = inputs
    thin = _write(tmp_path / "wide.png", synthetic_image(16, 1600, seed=3))  # 64x1 px at 64 px
    out = tmp_path / "out.png"
    stylize = ["stylize", "-o", str(out), "--size", "64", "--iterations", "1", "--device", "cpu", "--no-progress"]
    sweep = ["sweep", "--out", str(tmp_path / "sw"), "--size", "64", "--iterations", "1", "--device", "cpu",
             "--no-progress"]
    argv, expect = {
        "thin-style": (stylize + [str(c), str(thin)], "wide.png: the style image at a long side of 64 px is 64x1 px"),
        "style-scale": (stylize + [str(c), str(c), "--style-scale", "0.01"],  # c is 64x48: 16x12 px
                        "c.png: the style image at a long side of 16 px (--style-scale 0.01 of 64 px) is 16x12 px"),
        "thin-content": (stylize + [str(thin), str(s)], "wide.png: the content image at a long side of 64 px is 64x1"),
        "sweep-thin-style": (sweep + [str(c), str(thin)], "wide.png: the style image at a long side of 64 px"),
        # runs on shallow layers (2 px) take a 64x6 px style; the scorer, at the output's size, does not
        "sweep-scorer": (sweep + [str(c), str(_write(tmp_path / "band.png", synthetic_image(160, 1600))),
                                  "--content-layer-sets", "relu2_1", "--style-layer-sets", "relu1_1,relu2_1"],
                         "band.png: the style image at a long side of 64 px is 64x6 px"),
    }[case]
    line = _one_error(argv, capsys, expect)
    assert "too small for the loss network: vgg16-caffe needs at least 16 px a side up to relu5_1" in line
    assert not out.exists() and not (tmp_path / "out.csv").exists() and not (tmp_path / "sw").exists()
