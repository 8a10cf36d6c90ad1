"""Upper bounds and wording of numeric and path flags: a value no real run uses (a 100000 px crop, a
width no model file may hold, port 70000) is refused with one line naming the flag and the limit, exit 2,
before any work, instead of a traceback after trying to allocate hundreds of GB."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from conftest import synthetic_image, write_png
from fastst.cli import main as fastst_main
from fastst.errors import FaststError
from fastst.training.config import MAX_IMAGE_SIZE, TrainConfig
from gatys.cli import main as gatys_main


def _argparse_error(main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The error line of an argument the parser refuses (it exits with status 2)."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def _one_line_error(main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a run refused with exit status 2."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------------------------------- flag types

def test_bounded_integer_and_number_types():
    from fastst.commands.flags import number_in, positive

    port = positive(0, 65535)
    assert port("0") == 0 and port("65535") == 65535
    for bad in ("-1", "65536", "70000"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"must be from 0 to 65535, got {bad}"):
            port(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="must be at least 1, got 0"):
        positive(1)("0")
    strength = number_in(0.0, 1.5)
    assert strength("0") == 0.0 and strength("1.5") == 1.5
    for bad in ("nan", "inf", "-inf", "-0.1", "1.6"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"must be in \[0, 1.5\]"):
            strength(bad)


# ------------------------------------------------------------------------------------------------ train

def test_train_config_upper_bounds_name_the_setting_and_the_limit():
    from fastst.modelcheck import MAX_WIDTH

    assert TrainConfig(width=MAX_WIDTH).width == MAX_WIDTH  # the widest a model file may hold trains
    with pytest.raises(FaststError, match=f"'width' must be at most {MAX_WIDTH}, .*got {MAX_WIDTH + 1}"):
        TrainConfig(width=MAX_WIDTH + 1)
    assert TrainConfig(image_size=MAX_IMAGE_SIZE, style_size=MAX_IMAGE_SIZE, batch_size=1).image_size == MAX_IMAGE_SIZE
    with pytest.raises(FaststError, match=f"'image_size' must be at most {MAX_IMAGE_SIZE} px, got 100000"):
        TrainConfig(image_size=100000)
    with pytest.raises(FaststError, match=f"'style_size' must be at most {MAX_IMAGE_SIZE} px, got 100000"):
        TrainConfig(style_size=100000)
    with pytest.raises(FaststError, match="'style_size' must be given above an image size of"):
        TrainConfig(image_size=MAX_IMAGE_SIZE)  # its default style size, twice the crop, would be too large
    with pytest.raises(FaststError, match=f"'style_sizes' must be distinct sizes from 32 to {MAX_IMAGE_SIZE} px"):
        TrainConfig(style_sizes=(256, MAX_IMAGE_SIZE + 1))
    # a batch holds at most MAX_IMAGE_SIZE² pixels: 1024 crops of 256 px
    assert TrainConfig(image_size=256, batch_size=1024).batch_size == 1024
    with pytest.raises(FaststError, match="'batch_size' must be at most 1024 at an image size of 256 px"):
        TrainConfig(image_size=256, batch_size=1025)


@pytest.mark.parametrize("flag, value, message", [
    ("--width", "100000", "--width must be at most 1024"),
    ("--image-size", "100000", f"--image-size must be at most {MAX_IMAGE_SIZE} px, got 100000"),
    ("--style-size", "100000", f"--style-size must be at most {MAX_IMAGE_SIZE} px, got 100000"),
    ("--batch-size", "100000", "--batch-size must be at most 16384 at an image size of 64 px"),
    ("--style-sizes", "64,100000", "--style-sizes must be distinct sizes"),
])
def test_train_refuses_huge_sizes_before_any_work(tmp_path, photo_dir, capsys, flag, value, message):
    style = write_png(tmp_path / "style.png", synthetic_image(48, 48))
    out = tmp_path / "m.fst"
    line = _one_line_error(fastst_main, ["train", "--style", str(style), "--data", str(photo_dir), "--out", str(out),
                                         "--steps", "2", "--image-size", "64", "--batch-size", "2", "--init", "none",
                                         flag, value], capsys)
    assert line.startswith("fastst: error: ") and message in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "style.png"]  # no model, no logs folder


# ------------------------------------------------------------------------------------------------ infer

@pytest.mark.parametrize("flags, message", [
    (["--strength", "nan"], "argument --strength: must be in [0, 1.5], got nan"),
    (["--strength", "inf"], "argument --strength: must be in [0, 1.5], got inf"),
    (["--strength", "-1"], "argument --strength: must be in [0, 1.5], got -1"),
    (["--strength", "5"], "argument --strength: must be in [0, 1.5], got 5"),
    (["--stroke", "nan"], "argument --stroke: must be in [0, 1], got nan"),
    (["--stroke", "2"], "argument --stroke: must be in [0, 1], got 2"),
    (["--style", "starry_night=inf", "--style", "hokusai=1"],
     "argument --style: starry_night=inf: the weight must be a finite number ≥ 0, got inf"),
    (["--style", "starry_night=nan"], "the weight must be a finite number ≥ 0, got nan"),
    (["--style", "starry_night=-1"], "the weight must be a finite number ≥ 0, got -1"),
    (["--style", "starry_night=x"], "argument --style: starry_night=x: the weight 'x' is not a number"),
])
def test_infer_control_flags_are_checked_by_the_parser(tmp_path, capsys, flags, message):
    """Blamed on the flag, not the model file, and refused before the model is loaded (none is given
    here: a missing model would be the error otherwise)."""
    photo = write_png(tmp_path / "p.png", synthetic_image(32, 32))
    line = _argparse_error(fastst_main, ["infer", str(tmp_path / "missing.fst"), str(photo), "-o",
                                         str(tmp_path / "o.png"), *flags], capsys)
    assert line.startswith("fastst infer: error: ") and line.endswith(message), line
    assert not (tmp_path / "o.png").exists()


def test_infer_style_spec_keeps_good_styles_as_given():
    from fastst.commands.infer import style_spec

    for text in ("starry_night", "3", "starry_night@512", "a=0", "a=1e308", "b=2.5"):
        assert style_spec(text) == text
    for text in ("a=inf", "a=-inf", "a=nan", "a=-0.5", "a=", "a=b"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{text}: the weight"):
            style_spec(text)


# ------------------------------------------------------------------------------------------------ serve

@pytest.mark.parametrize("port", ["-1", "65536", "70000"])
def test_serve_port_out_of_range(tmp_path, capsys, port):
    (tmp_path / "index.html").write_text("<html></html>")
    line = _argparse_error(fastst_main, ["serve", "--port", port, str(tmp_path)], capsys)
    assert line == f"fastst serve: error: argument --port: must be from 0 to 65535, got {port}"


def test_serve_names_a_missing_folder_and_a_file(tmp_path, capsys):
    missing = tmp_path / "missing"
    assert _one_line_error(fastst_main, ["serve", str(missing)], capsys) == f"fastst: error: {missing}: no such folder"
    page = write_png(tmp_path / "page.png", synthetic_image(16, 16))
    assert _one_line_error(fastst_main, ["serve", str(page)], capsys).startswith(f"fastst: error: {page}: not a folder")
    (tmp_path / "empty").mkdir()
    assert "no index.html" in _one_line_error(fastst_main, ["serve", str(tmp_path / "empty")], capsys)


# ------------------------------------------------------------------------------------------------ gatys

@pytest.fixture
def gatys_inputs(tmp_path: Path) -> tuple[Path, Path]:
    return (write_png(tmp_path / "c.png", synthetic_image(40, 48, seed=1)),
            write_png(tmp_path / "s.png", synthetic_image(48, 48, seed=2)))


@pytest.mark.parametrize("flags, message", [
    (["--size", "100000"], f"--size must be at most {MAX_IMAGE_SIZE} px, got 100000"),
    (["--size", "64", "--style-scale", "1000"], f"--style-scale 1000 at --size 64 makes the style images 64000 px; "
                                                f"at most {MAX_IMAGE_SIZE} px"),
    (["--size", "64", "--lr", "nan"], "--lr must be a positive number, got nan"),
    (["--size", "64", "--lr", "-1"], "--lr must be a positive number"),
    (["--size", "64", "--lr", "inf"], "--lr must be a positive number, got inf"),
    (["--size", "64", "--seed", "-1"], "--seed must be from 0 to 2^32 - 1, got -1"),
    (["--size", "64", "--seed", str(2 ** 32)], "--seed must be from 0 to 2^32 - 1"),
    (["--size", "64", "--save-every", "-1"], "--save-every must be 0 (no snapshots) or a positive number"),
])
def test_gatys_stylize_bounds_before_any_work(tmp_path, capsys, gatys_inputs, flags, message):
    content, style = gatys_inputs
    out = tmp_path / "o.png"
    line = _one_line_error(gatys_main, ["stylize", str(content), str(style), "-o", str(out), "--iterations", "2",
                                        *flags], capsys)
    assert line.startswith("gatys: error: ") and message in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "s.png"]


def test_gatys_sweep_bounds(tmp_path, capsys, gatys_inputs):
    content, style = gatys_inputs
    for flags, message in ((["--size", "100000"], "--size must be at most"), (["--seed", "-1"], "--seed must be"),
                           (["--lr", "0"], "--lr must be a positive number")):
        line = _one_line_error(gatys_main, ["sweep", str(content), str(style), "--out", str(tmp_path / "sw"),
                                            "--iterations", "2", *flags], capsys)
        assert message in line, line
    assert not (tmp_path / "sw").exists()


def test_gatys_library_checks_settings_by_name():
    from gatys.inputs import check_settings

    def check(**changes: object) -> None:
        settings = dict(size=64, iterations=2, scales=1, style_scale=1.0, init="content", weights=[1.0],
                        n_styles=1, style_blend=None)
        lr, seed = changes.pop("lr", None), changes.pop("seed", 0)
        check_settings(**{**settings, **changes}, lr=lr, seed=seed)

    check(size=MAX_IMAGE_SIZE, lr=1.0, seed=2 ** 32 - 1)
    for changes, message in (({"size": MAX_IMAGE_SIZE + 1}, "'size' must be at most"),
                             ({"style_scale": 1000.0}, "'style_scale' 1000 at 'size' 64"),
                             ({"lr": float("nan")}, "'lr' must be a positive number"),
                             ({"seed": -1}, "'seed' must be from 0")):
        with pytest.raises(FaststError, match=message):
            check(**changes)


def test_gatys_output_that_is_a_folder(tmp_path, capsys, gatys_inputs):
    content, style = gatys_inputs
    (tmp_path / "outdir").mkdir()
    line = _one_line_error(gatys_main, ["stylize", str(content), str(style), "-o", str(tmp_path / "outdir"),
                                        "--size", "32", "--iterations", "1"], capsys)
    assert line.startswith(f"gatys: error: {tmp_path / 'outdir'}: is a folder"), line


# ------------------------------------------------------------------------------------------------- demo

def test_demo_refuses_an_unusable_out_and_a_negative_photo_count(tmp_path, capsys):
    from fastst.commands.demo import main as demo_main

    file = tmp_path / "file.jpg"
    file.write_bytes(b"x")
    line = _one_line_error(demo_main, ["--tiny", "--out", str(file)], capsys)
    assert line == f"fastst demo: error: {file}: is not a folder (an output folder was expected)"
    line = _one_line_error(demo_main, ["--tiny", "--out", str(file / "demo")], capsys)
    assert line.startswith("fastst demo: error: ") and "is a file" in line, line
    for count in ("-1", "0"):
        line = _argparse_error(demo_main, ["--tiny", "--out", str(tmp_path / "d"), "--photos", count], capsys)
        assert line.endswith(f"argument --photos: must be at least 1, got {count}"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.jpg"]
