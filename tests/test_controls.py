"""Strength and stroke as row weights (fastst.controls) and the model-file fields behind them."""
from __future__ import annotations

import pytest
import torch

from fastst.controls import Row, groups, mix, resolve
from fastst.errors import FaststError
from fastst.modelfile import StyleInfo, load_model, save_model
from fastst.transformer import TransformerNet, style_vector

# two groups: "waves" at two style sizes (the larger first in the table), "sun" at one; an identity row
ROWS = [Row("waves@512", group="waves", style_size=512), Row("sun", style_size=256),
        Row("waves", group="waves", style_size=256), Row("identity", kind="identity")]


def random_net(rows: int, seed: int = 0, width: int = 8) -> TransformerNet:
    torch.manual_seed(seed)
    net = TransformerNet(rows, width=width)
    with torch.no_grad():
        for norm in net.norms():
            norm.scale.uniform_(0.5, 1.5)
            norm.shift.uniform_(-0.5, 0.5)
        net.skip.uniform_(0, 1)  # per-row gains of the input skip, interpolated like the norms
    return net.eval()


def test_groups_sort_rows_by_style_size_and_leave_out_identity():
    assert groups(ROWS) == {"waves": [2, 0], "sun": [1]}


def test_strength_interpolates_between_identity_and_style():
    assert mix(ROWS, {"sun": 1}, strength=1).weights == [0, 1, 0, 0]
    assert mix(ROWS, {"sun": 1}, strength=0).weights == [0, 0, 0, 1]
    assert mix(ROWS, {"sun": 1}, strength=0.25).weights == [0, 0.25, 0, 0.75]
    extrapolated = mix(ROWS, {"sun": 1}, strength=1.5).weights
    assert extrapolated == [0, 1.5, 0, -0.5] and sum(extrapolated) == 1


def test_stroke_splits_a_group_between_its_sizes():
    assert mix(ROWS, {"waves": 1}, stroke=0).weights == [0, 0, 1, 0]
    assert mix(ROWS, {"waves": 1}, stroke=1).weights == [1, 0, 0, 0]
    assert mix(ROWS, {"waves": 1}, stroke=0.25).weights == [0.25, 0, 0.75, 0]
    assert mix(ROWS, {"waves": 1}).weights == [0, 0, 1, 0]  # default: the row named like the group
    assert mix(ROWS, {"sun": 1}, stroke=0.7).weights == [0, 1, 0, 0]  # one row: stroke ignored
    assert mix(ROWS, {"waves@512": 1}, stroke=0).weights == [1, 0, 0, 0]  # a row named itself


def test_blend_then_stroke_then_strength():
    w = mix(ROWS, {"waves": 3, "sun": 1}, strength=0.5, stroke=0.5).weights
    assert w == pytest.approx([0.5 * 0.75 * 0.5, 0.5 * 0.25, 0.5 * 0.75 * 0.5, 0.5])
    assert sum(w) == pytest.approx(1)


@pytest.mark.parametrize("kwargs, message", [
    ({"strength": -0.1}, "strength must be in [0, 1.5], got -0.1"),
    ({"strength": 1.6}, "strength must be in [0, 1.5], got 1.6"),
    ({"strength": float("nan")}, "strength must be in"),
    ({"stroke": 1.2}, "stroke must be in [0, 1], got 1.2"),
    ({"stroke": -1}, "stroke must be in [0, 1], got -1"),
])
def test_out_of_range_controls_are_one_line_errors(kwargs, message):
    with pytest.raises(FaststError) as e:
        mix(ROWS, {"sun": 1}, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unknown_style_lists_the_groups():
    with pytest.raises(FaststError, match="unknown style 'moon'; styles are: waves, sun, identity"):
        mix(ROWS, {"moon": 1})


def test_a_style_named_by_digits_is_found_by_its_name_before_an_index(tmp_path):
    """A style called "3" is that style, not row 3; other digit strings are still indices."""
    rows = [Row("3"), Row("a"), Row("b"), Row("c")]
    assert resolve(rows, "3") == ("3", None) and resolve(rows, 3) == ("c", 3) and resolve(rows, "1") == ("a", 1)
    with pytest.raises(FaststError, match="unknown style '²'"):  # a digit that int() cannot read
        resolve(rows, "²")
    path = save_model(tmp_path / "m.fst", TransformerNet(num_styles=4, width=8), [StyleInfo(r.name) for r in rows])
    model = load_model(path)
    assert model.style_index("3") == 0 and model.style_index(3) == 3 and model.style_index("2") == 2


def test_without_identity_row_strength_is_a_pixel_blend():
    rows = [Row("a"), Row("b")]
    m = mix(rows, {"b": 1}, strength=0.3)
    assert m.weights == [0, 1] and m.pixel_blend == 0.3
    with pytest.raises(FaststError, match="identity row"):
        mix(rows, {"b": 1}, strength=1.2)


def test_signed_style_vector_admits_extrapolation():
    assert style_vector(2, [1.5, -0.5], signed=True).tolist() == [[1.5, -0.5]]
    with pytest.raises(ValueError):
        style_vector(2, [1.5, -0.5])


def test_strength_ends_and_stroke_equal_the_rows_and_their_interpolated_norms(tmp_path):
    """s = 0 is the identity row's output, s = 1 the style's; a stroke between two rows runs the network
    with the linearly interpolated scale and shift (a single-row network built from them agrees)."""
    net = random_net(len(ROWS))
    infos = [StyleInfo(r.name, kind=r.kind, group=r.group, style_size=r.style_size) for r in ROWS]
    path = save_model(tmp_path / "m.fst", net, infos, default_strength=0.6)
    model = load_model(path)
    assert [s.to_dict()["kind"] for s in model.styles] == ["style", "style", "style", "identity"]
    assert model.styles[0].group == "waves" and model.styles[0].style_size == 512 and model.styles[1].group is None
    assert model.default_strength == 0.6
    x = torch.rand(1, 3, 40, 48)

    def run(weights: list[float]) -> torch.Tensor:
        return model.net(x, torch.tensor([weights]))

    torch.testing.assert_close(run(model.mix("sun", strength=0).weights), run([0, 0, 0, 1]), rtol=0, atol=0)
    torch.testing.assert_close(run(model.mix("sun", strength=1).weights), run([0, 1, 0, 0]), rtol=0, atol=0)
    assert model.mix("sun").weights == pytest.approx([0, 0.6, 0, 0.4])  # the model's default strength

    x_stroke = 0.3
    single = TransformerNet(1, width=8).eval()
    single.load_state_dict(model.net.state_dict() | {
        k: ((1 - x_stroke) * v[2] + x_stroke * v[0])[None] for k, v in model.net.state_dict().items()
        if k.endswith((".scale", ".shift")) or k == "skip"})
    torch.testing.assert_close(run(model.mix("waves", strength=1, stroke=x_stroke).weights),
                               single(x, torch.ones(1, 1)), rtol=1e-5, atol=1e-5)


def test_old_model_files_load_as_style_rows(tmp_path):
    path = save_model(tmp_path / "old.fst", random_net(2), [StyleInfo("a"), StyleInfo("b")])
    blob = torch.load(path, weights_only=True)
    for s in blob["styles"]:
        del s["kind"]  # as written before these fields existed
    torch.save(blob, path)
    model = load_model(path)
    assert [(s.kind, s.group, s.style_size) for s in model.styles] == [("style", None, None)] * 2
    assert model.default_strength == 1.0
    assert model.mix("b", strength=0.5).pixel_blend == 0.5


def test_infer_strength_and_stroke_flags(tmp_path, capsys):
    """`fastst infer --strength/--stroke` run the composed rows; out-of-range values are refused by the
    argument parser (exit 2) before anything is written; --pixel-blend 0 gives the photo back."""
    from conftest import synthetic_image, write_png
    from fastst.cli import main
    from fastst.images import load_image

    net = random_net(len(ROWS))
    infos = [StyleInfo(r.name, kind=r.kind, group=r.group, style_size=r.style_size) for r in ROWS]
    model_path = save_model(tmp_path / "m.fst", net, infos, default_strength=0.5)
    photo = write_png(tmp_path / "p.png", synthetic_image(32, 40))
    out = tmp_path / "o.png"
    assert main(["infer", str(model_path), str(photo), "-o", str(out), "--style", "waves", "--stroke", "1",
                 "--strength", "0.75", "--precision", "fp32", "-q"]) == 0
    x = load_image(photo).unsqueeze(0)
    with torch.no_grad():
        want = net(x, torch.tensor([[0.75, 0, 0, 0.25]]))[0]
    assert (load_image(out) - want).abs().max() <= 1 / 255 + 1e-6
    for flag, value, message in (("--strength", "1.6", "argument --strength: must be in [0, 1.5], got 1.6"),
                                 ("--stroke", "-0.5", "argument --stroke: must be in [0, 1], got -0.5")):
        bad = tmp_path / f"bad{flag}.png"
        with pytest.raises(SystemExit) as stopped:  # refused by the argument parser, before the model loads
            main(["infer", str(model_path), str(photo), "-o", str(bad), flag, value, "-q"])
        err = capsys.readouterr().err.strip()
        assert stopped.value.code == 2 and err.splitlines()[-1].endswith(message) and not bad.exists()
    assert main(["infer", str(model_path), str(photo), "-o", str(out), "--pixel-blend", "0", "--overwrite", "-q"]) == 0
    assert (load_image(out) - x[0]).abs().max() <= 1 / 255 + 1e-6


# "sun" with strength rows at 0.25 and 0.75 (placed out of order); "waves" has none
STRENGTH_ROWS = ROWS + [Row("sun~0.75", kind="strength", group="sun", style_size=256, strength=0.75),
                        Row("sun~0.25", kind="strength", group="sun", style_size=256, strength=0.25)]


def test_strength_passes_through_a_styles_strength_rows():
    assert groups(STRENGTH_ROWS) == {"waves": [2, 0], "sun": [1]}  # strength rows are no styles of their own
    assert mix(STRENGTH_ROWS, {"sun": 1}, strength=0.25).weights == [0, 0, 0, 0, 0, 1]
    assert mix(STRENGTH_ROWS, {"sun": 1}, strength=0.75).weights == [0, 0, 0, 0, 1, 0]
    assert mix(STRENGTH_ROWS, {"sun": 1}, strength=0.5).weights == [0, 0, 0, 0, 0.5, 0.5]
    assert mix(STRENGTH_ROWS, {"sun": 1}, strength=0.125).weights == [0, 0, 0, 0.5, 0, 0.5]
    assert mix(STRENGTH_ROWS, {"sun": 1}, strength=0.875).weights == pytest.approx([0, 0.5, 0, 0, 0.5, 0])
    assert mix(STRENGTH_ROWS, {"sun": 1}, strength=1.25).weights == [0, 1.25, 0, -0.25, 0, 0]  # beyond 1: as before
    # a blend: each style on its own path; a style without strength rows keeps the straight line
    w = mix(STRENGTH_ROWS, {"sun": 1, "waves": 1}, strength=0.5).weights
    assert w == pytest.approx([0, 0, 0.25, 0.25, 0.25, 0.25]) and sum(w) == pytest.approx(1)


def test_strength_rows_need_their_own_style_size():
    rows = ROWS + [Row("waves~0.5", kind="strength", group="waves", style_size=512, strength=0.5)]
    assert mix(rows, {"waves": 1}, stroke=1, strength=0.5).weights == [0, 0, 0, 0, 1]  # the 512 row's path
    assert mix(rows, {"waves": 1}, stroke=0, strength=0.5).weights == [0, 0, 0.5, 0.5, 0]  # the 256 row: straight


def test_strength_rows_round_trip_the_model_file_and_are_checked(tmp_path):
    infos = [StyleInfo("a", style_size=64), StyleInfo("identity", kind="identity"),
             StyleInfo("a~0.5", kind="strength", group="a", style_size=64, strength=0.5)]
    path = save_model(tmp_path / "m.fst", random_net(3), infos)
    model = load_model(path)
    assert [(s.kind, s.strength) for s in model.styles] == [("style", None), ("identity", None), ("strength", 0.5)]
    assert model.mix("a", 0.5).weights == [0, 0, 1]
    bad = [*infos[:2], StyleInfo("a~0.5", kind="strength", group="a", style_size=64, strength=1.5)]
    bad_path = save_model(tmp_path / "bad.fst", random_net(3), bad)
    with pytest.raises(FaststError, match="a strength row needs a strength between 0 and 1"):
        load_model(bad_path)
