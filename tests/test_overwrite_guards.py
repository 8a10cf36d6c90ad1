"""`fastst train`, `convert` and `export` never replace an existing output without --overwrite, and never
an input (through hard links too) even with it; each refusal is one line, exit 2, before any work.
`train` also refuses a log folder holding an earlier run's checkpoints unless --resume continues that
run or --overwrite replaces them (and then the new run's last checkpoint is last.ckpt)."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import pytest
import torch

from conftest import write_training_inputs
from fastst.cli import main
from fastst.modelfile import load_model

EXISTS = "output exists; use --overwrite to replace it"
TINY = ["--image-size", "32", "--batch-size", "2", "--width", "4", "--preview-every", "1", "--checkpoint-every", "1"]


def fastst(*argv: str | Path) -> tuple[int, str]:
    """(exit status, stderr) of `fastst ARGV`, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


def assert_refused(rc: int, err: str, *words: str) -> None:
    lines = [line.split("\r")[-1] for line in err.splitlines()]
    lines = [line for line in lines if line.strip()]
    assert rc == 2 and "Traceback" not in err, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("fastst: error: "), err[-2000:]
    assert all(w in lines[0] for w in words), (words, lines[0])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A style image, four photos, and one finished 1-step run: base.fst and base_logs/."""
    d = write_training_inputs(tmp_path_factory.mktemp("guards"))
    rc, err = fastst("train", "--style", d / "style.png", "--data", d / "photos", "--out", d / "base.fst",
                     "--steps", "1", *TINY)
    assert rc == 0, err[-2000:]
    return d


def train(work: Path, out: Path, *extra: str | Path, steps: int = 1) -> tuple[int, str]:
    return fastst("train", "--style", work / "style.png", "--data", work / "photos", "--out", out,
                  "--steps", str(steps), *TINY, *extra)


# ---------------------------------------------------------------------------------------------- train


def test_train_refuses_an_existing_out_before_any_work(work, tmp_path):
    out = tmp_path / "m.fst"
    out.write_bytes(b"hours of training")
    assert_refused(*train(work, out), str(out), EXISTS)
    assert out.read_bytes() == b"hours of training"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fst"]  # no log folder either
    rc, err = train(work, out, "--overwrite")
    assert rc == 0, err[-2000:]
    assert load_model(out).config["steps_done"] == 1
    (tmp_path / "dir.fst").mkdir()
    assert_refused(*train(work, tmp_path / "dir.fst", "--overwrite"), "dir.fst", "is a folder")


def test_train_never_replaces_an_input_even_with_overwrite(work, tmp_path):
    style = shutil.copy(work / "style.png", tmp_path / "style.png")
    link = tmp_path / "link.fst"
    os.link(style, link)  # a second name of the style image
    before = Path(style).read_bytes()
    for extra in ([], ["--overwrite"]):
        rc, err = fastst("train", "--style", style, "--data", work / "photos", "--out", link, "--steps", "1",
                         *TINY, *extra)
        assert_refused(rc, err, str(link), "is also an input")
    assert Path(style).read_bytes() == before and os.path.samefile(style, link)


def test_a_second_run_into_a_used_log_folder_needs_overwrite_and_then_replaces_its_checkpoints(work, tmp_path):
    logs = tmp_path / "logs"
    rc, err = train(work, tmp_path / "a.fst", "--log-dir", logs)
    assert rc == 0, err[-2000:]
    before = snapshot(logs)
    assert "checkpoints/last.ckpt" in before
    rc, err = train(work, tmp_path / "b.fst", "--log-dir", logs, steps=2)
    assert_refused(rc, err, str(logs), "earlier run", "--overwrite", "--resume")
    assert snapshot(logs) == before and not (tmp_path / "b.fst").exists()

    rc, err = train(work, tmp_path / "b.fst", "--log-dir", logs, "--overwrite", steps=2)
    assert rc == 0, err[-2000:]
    assert "not empty" not in err and "will be deleted" not in err
    assert "checkpoints/epoch=0-step=1.ckpt" in before
    # the earlier run's checkpoints are gone, and the new last one is last.ckpt, not last-v1.ckpt
    assert sorted(p.name for p in (logs / "checkpoints").iterdir()) == ["epoch=0-step=2.ckpt", "last.ckpt"]
    assert torch.load(logs / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2
    assert not list(logs.glob(".fastst-replaced-*"))
    # the help's --resume OUT_logs/checkpoints/last.ckpt now continues the latest run
    rc, err = train(work, tmp_path / "c.fst", "--log-dir", logs, "--resume", logs / "checkpoints" / "last.ckpt",
                    steps=3)
    assert rc == 0, err[-2000:]
    assert load_model(tmp_path / "c.fst").config["steps_done"] == 3


def test_overwrite_puts_the_earlier_logs_back_when_the_run_fails_before_its_first_checkpoint(work, tmp_path):
    logs = tmp_path / "m_logs"
    rc, err = train(work, tmp_path / "m.fst")
    assert rc == 0, err[-2000:]
    before = snapshot(logs)
    rc, err = fastst("train", "--style", tmp_path / "missing.png", "--data", work / "photos",
                     "--out", tmp_path / "n.fst", "--log-dir", logs, "--steps", "1", *TINY, "--overwrite")
    assert_refused(rc, err, "missing.png")  # refused by train's own checks, after the logs were moved aside
    assert snapshot(logs) == before


def test_resume_needs_no_overwrite_until_the_model_file_exists(work, tmp_path):
    out = tmp_path / "r.fst"
    rc, err = train(work, out)
    assert rc == 0, err[-2000:]
    last = tmp_path / "r_logs" / "checkpoints" / "last.ckpt"
    out.unlink()  # as after an interrupted run: checkpoints and logs, no model file yet
    rc, err = train(work, out, "--resume", last, steps=2)
    assert rc == 0, err[-2000:]
    assert load_model(out).config["steps_done"] == 2
    finished = out.read_bytes()
    assert_refused(*train(work, out, "--resume", last, steps=3), str(out), EXISTS)
    assert out.read_bytes() == finished
    rc, err = train(work, out, "--resume", last, "--overwrite", steps=3)
    assert rc == 0, err[-2000:]
    assert load_model(out).config["steps_done"] == 3


# -------------------------------------------------------------------------------------------- convert


def test_convert_refuses_an_existing_out_and_never_replaces_its_input(work, tmp_path):
    ckpt = shutil.copy(work / "base_logs" / "checkpoints" / "last.ckpt", tmp_path / "run.ckpt")
    out = tmp_path / "run.fst"
    out.write_bytes(b"mine")
    assert_refused(*fastst("convert", ckpt, "-o", out), str(out), EXISTS)
    assert out.read_bytes() == b"mine"
    rc, err = fastst("convert", ckpt, "-o", out, "--overwrite")
    assert rc == 0, err
    assert load_model(out).style_names == ["style"]
    link = tmp_path / "link.fst"
    os.link(ckpt, link)
    before = Path(ckpt).read_bytes()
    assert_refused(*fastst("convert", ckpt, "-o", link, "--overwrite"), str(link), "is also an input")
    assert Path(ckpt).read_bytes() == before and os.path.samefile(ckpt, link)


# --------------------------------------------------------------------------------------------- export


def test_export_onnx_refuses_an_existing_file_unless_told(work, tmp_path):
    photo = tmp_path / "photo.jpg"  # a typo in --onnx must not cost a file, --overwrite or not
    photo.write_bytes(b"a photo")
    for extra in ([], ["--overwrite"]):
        assert_refused(*fastst("export", work / "base.fst", "--onnx", photo, "--no-verify", *extra), str(photo),
                       "ending in .onnx")
    assert photo.read_bytes() == b"a photo"
    onnx_path = tmp_path / "old.onnx"
    onnx_path.write_bytes(b"an old export")
    assert_refused(*fastst("export", work / "base.fst", "--onnx", onnx_path, "--no-verify"), str(onnx_path), EXISTS)
    assert onnx_path.read_bytes() == b"an old export"
    rc, err = fastst("export", work / "base.fst", "--onnx", onnx_path, "--no-verify", "--overwrite")
    assert rc == 0, err
    import onnx
    assert [i.name for i in onnx.load(str(onnx_path)).graph.input] == ["image", "style"]


def test_export_refuses_a_hard_link_to_its_model_even_with_overwrite(work, tmp_path):
    model = shutil.copy(work / "base.fst", tmp_path / "m.fst")
    link = tmp_path / "m.onnx"
    os.link(model, link)
    before = Path(model).read_bytes()
    for extra in ([], ["--overwrite"]):
        rc, err = fastst("export", model, "--onnx", link, "--no-verify", *extra)
        assert_refused(rc, err, str(link), "overwrite the input model")
    assert Path(model).read_bytes() == before and os.path.samefile(model, link)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fst", "m.onnx"]  # no temporary file left


def test_export_coreml_refuses_an_existing_package_and_one_holding_its_model(work, tmp_path):
    package = tmp_path / "m.mlpackage"
    package.mkdir()
    (package / "Manifest.json").write_text("{}")
    assert_refused(*fastst("export", work / "base.fst", "--coreml", package), str(package), EXISTS)
    model = shutil.copy(work / "base.fst", package / "m.fst")
    before = snapshot(package)
    rc, err = fastst("export", model, "--coreml", package, "--overwrite")
    assert_refused(rc, err, str(package), "holding the input model")
    assert snapshot(package) == before


def test_export_outputs_may_not_lie_inside_one_another(work, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    rc, err = fastst("export", work / "base.fst", "--onnx", site / "m.onnx", "--web", site, "--no-verify")
    assert_refused(rc, err, "m.onnx", "another output")
    assert not list(site.iterdir())


def test_a_log_folder_left_with_nothing_of_use_is_dropped_and_one_with_a_checkpoint_is_kept(tmp_path):
    from fastst.commands.train import drop_if_unused

    bare = tmp_path / "bare_logs"
    (bare / "checkpoints").mkdir(parents=True)
    (bare / "hparams.yaml").write_text("lr: 0.001\n")
    drop_if_unused(bare)
    assert not bare.exists()
    used = tmp_path / "used_logs"
    (used / "checkpoints").mkdir(parents=True)
    (used / "checkpoints" / "last.ckpt").write_bytes(b"x")
    drop_if_unused(used)
    assert (used / "checkpoints" / "last.ckpt").exists()
