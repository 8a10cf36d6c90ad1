"""The Gatys study and the sweep's learning-rate axis: --lrs parsing and its errors, a quick study whose
report's tables hold the rows they should with numbers read from the CSVs, and resuming that reruns nothing."""
from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

import gatys.optimize as go
from conftest import synthetic_image, write_png
from gatys.cli import main
from gatys.grid import ALL, grid, parse_lrs
from gatys.study import FIRST_ORDER, LR_FACTORS, STYLE_WEIGHT_FACTORS
from gatys.study_analysis import TARGET_FACTOR


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_lrs_parse_per_optimizer_and_for_all():
    assert parse_lrs(["adam=0.01,0.05", "rmsprop=1e-3,5e-3"]) == {"adam": [0.01, 0.05], "rmsprop": [1e-3, 5e-3]}
    assert parse_lrs(["adam=0.01,0.05 rmsprop=1e-3"]) == {"adam": [0.01, 0.05], "rmsprop": [1e-3]}
    assert parse_lrs(["0.1,0.2"]) == {ALL: [0.1, 0.2]}
    lrs = parse_lrs(["0.1", "adam=0.01,0.05"])
    runs = grid(["lbfgs", "adam", "sgd"], [(1.0, 1e3)], [None], [None], ["vgg16-caffe"], lrs=lrs)
    assert [(r.optimizer, r.lr) for r in runs] == [("lbfgs", 0.1), ("adam", 0.01), ("adam", 0.05), ("sgd", 0.1)]
    no_axis = grid(["lbfgs", "adam"], [(1.0, 1e3)], [None], [None], ["vgg16-caffe"], lrs=parse_lrs(["adam=0.3"]))
    assert [(r.optimizer, r.lr) for r in no_axis] == [("lbfgs", None), ("adam", 0.3)]  # lbfgs keeps its default


@pytest.mark.parametrize("lrs, expect", [
    (["adam="], "no rates after the name"),
    (["adam=fast"], "'fast' is not a number"),
    (["adam=0.1,,0.2"], "'' is not a number"),
    (["adam=-0.1"], "-0.1 is not a positive finite rate"),
    (["rmsprop=nan"], "nan is not a positive finite rate"),
    (["newton=0.1"], "unknown optimizer 'newton'"),
    (["adam=0.1", "adam=0.2"], "adam's rates are given twice"),
    (["adam=0.1,0.1"], "0.1 is given twice"),
    (["0.1", "0.2"], "a second list for every optimizer"),
    (["lbfgs=1"], "learning rates given for lbfgs, which is not among the optimizers (adam, rmsprop)"),
    (["0.1", "--lr", "0.2"], "one learning rate for every run (0.2) and a learning-rate axis"),
])
def test_malformed_lrs_are_one_line_errors(lrs, expect, tmp_path, capsys):
    c = write_png(tmp_path / "c.png", synthetic_image(40, 48, seed=1))
    s = write_png(tmp_path / "s.png", synthetic_image(40, 40, seed=2))
    out = tmp_path / "sw"
    argv = ["sweep", str(c), str(s), "--out", str(out), "--optimizers", "adam", "rmsprop", "--size", "32",
            "--iterations", "1", "--device", "cpu", "--lrs", *lrs]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gatys: error: ") and expect in lines[0], err
    assert "Traceback" not in err and not out.exists()


def test_sweep_lr_axis_in_summary_plot_and_sheet(tmp_path, capsys):
    c = write_png(tmp_path / "c.png", synthetic_image(40, 48, seed=1))
    styles = [write_png(tmp_path / f"s{i}.png", synthetic_image(40, 40, seed=2 + i)) for i in (1, 2)]
    out = tmp_path / "sw"
    assert main(["sweep", str(c), *map(str, styles), "--out", str(out), "--optimizers", "adam", "rmsprop", "--lrs",
                 "adam=0.01,0.2", "rmsprop=1e-3", "--size", "32", "--iterations", "3", "--device", "cpu",
                 "--no-progress"]) == 0
    summary = _csv(out / "summary.csv")
    assert [(r["style_image"], r["optimizer"], float(r["lr"])) for r in summary] == \
        [(s, o, lr) for s in ("s1", "s2") for o, lr in (("adam", 0.01), ("adam", 0.2), ("rmsprop", 1e-3))]
    assert all("_lr" in r["run"] for r in summary)
    a, b = (go.read_log(out / r["log"]) for r in summary[:2])  # two rates: two different runs
    assert a[0]["total"] == pytest.approx(b[0]["total"]) and a[-1]["total"] != pytest.approx(b[-1]["total"])
    with Image.open(out / "plot_lr.png") as im:
        assert im.format == "PNG" and im.size[0] >= 600
    # content + 2 styles, then a row per (style, optimizer), columns = its rates: 3 wide, 5 rows
    with Image.open(out / "contact_sheet.png") as im:
        assert im.size[0] == 3 * (256 + 8) + 8 and im.size[1] > 5 * 256


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A quick study on generated images (two styles), run once for the module."""
    root = tmp_path_factory.mktemp("study")
    c = write_png(root / "photo.png", synthetic_image(48, 64, seed=1))
    styles = [write_png(root / f"paint{i}.png", synthetic_image(48, 48, seed=5 + i)) for i in (1, 2)]
    out = root / "out"
    assert main(["study", "--out", str(out), "--quick", "--content", str(c), "--styles", *map(str, styles),
                 "--no-download", "--device", "cpu", "--no-progress"]) == 0
    return out


def _tables(report: str) -> dict[str, list[dict[str, str]]]:
    """Markdown tables by the heading above them ('' before any), each a list of rows keyed by column."""
    tables: dict[str, list[dict[str, str]]] = {}
    heading, lines = "", report.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = [h.strip() for h in line.strip("|").split("|")]
            rows = []
            for body in lines[i + 2:]:
                if not body.startswith("|"):
                    break
                rows.append(dict(zip(header, (c.strip() for c in body.strip("|").split("|")))))
            tables.setdefault(heading, rows)
    return tables


def test_quick_study_report_tables_come_from_the_csvs(study):
    report = (study / "report.md").read_text(encoding="utf-8")
    tables = _tables(report)
    # optimizers: six rows per style, objectives from summary.csv, evaluations to the target from the run CSVs
    optimizers = _csv(study / "optimizers" / "summary.csv")
    for style in ("paint1", "paint2"):
        rows = [r for r in optimizers if r["style_image"] == style]
        logs = {r["optimizer"]: go.read_log(study / "optimizers" / r["log"]) for r in rows}
        target = TARGET_FACTOR * min(min(x["total"] for x in log) for log in logs.values())
        table = next(t for h, t in tables.items() if h.startswith(f"Style: {style}"))
        assert [t["optimizer"] for t in table] == ["SGD", "Adadelta", "Adagrad", "Adam", "RMSprop", "L-BFGS"]
        for t, r in zip(table, rows):
            assert float(t["final objective"]) == pytest.approx(float(r["objective_total"]), rel=5e-3)
            assert float(t["score"]) == pytest.approx(float(r["total"]), rel=5e-3)
            hit = next((x["iteration"] for x in logs[r["optimizer"]] if x["total"] <= target), None)
            column = next(k for k in t if k.startswith("evaluations to"))
            assert t[column] == (str(hit) if hit else "not reached")
    # learning rates: one row per first-order optimizer, the best rate the lowest objective in its CSV
    rates = _csv(study / "learning_rates" / "summary.csv")
    assert len(rates) == len(FIRST_ORDER) * len(LR_FACTORS)
    lr_table = tables["Learning rate per first-order optimizer"]
    assert [t["optimizer"] for t in lr_table] == ["SGD", "Adadelta", "Adagrad", "Adam", "RMSprop"]
    for t, name in zip(lr_table, FIRST_ORDER):
        mine = [r for r in rates if r["optimizer"] == name]
        best = min(mine, key=lambda r: float(r["objective_total"]))
        assert float(t["best rate"]) == pytest.approx(float(best["lr"]), rel=5e-3)
        finals = [float(r["objective_total"]) for r in mine]
        assert float(t["spread"].rstrip("×")) == pytest.approx(max(finals) / min(finals), rel=5e-3)
        assert f"best rate {t['best rate']}" in report  # said in words, too
    # weights: five ratios per style with the scorer's terms; layers 2 x 2; backbones: one ran, three skipped
    weights = tables["Content:style weight ratio"]
    assert len(weights) == 2 * len(STYLE_WEIGHT_FACTORS)
    by_ratio = {(r["style_image"], float(r["style_weight"])): r for r in _csv(study / "weights" / "summary.csv")}
    for t in weights:
        r = by_ratio[(t["style image"], float(t["α:β"].split(":")[1]))]
        assert float(t["content"]) == pytest.approx(float(r["content"]), rel=5e-3)
    assert len(tables["Content and style layers"]) == 4
    backbones = tables["Loss networks at matched balance"]
    assert [t["backbone"] for t in backbones] == ["vgg16-caffe", "vgg16", "vgg19", "resnet50"]
    assert backbones[0]["status"].startswith("ran") and all(t["status"].startswith("skipped: ") for t in backbones[1:])
    # every picture the report shows exists, and the HTML version has the same tables
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (study / target).is_file(), target
    html = (study / "report.html").read_text(encoding="utf-8")
    assert html.count("<table>") == sum(line.startswith("|---") for line in report.splitlines()) >= 7
    assert "gatys study --out" in html


def test_resumed_study_reruns_nothing_finished(study, tmp_path, monkeypatch, capsys):
    out = tmp_path / "copy"
    shutil.copytree(study, out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("runs/*.csv")}
    calls: list[int] = []
    real = go.stylize

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(go, "stylize", counting)
    argv = ["study", "--out", str(out), "--quick", "--content", str(study.parent / "photo.png"), "--styles",
            str(study.parent / "paint1.png"), str(study.parent / "paint2.png"), "--no-download", "--device", "cpu",
            "--no-progress"]
    assert main(argv) == 2 and "holds a study already" in capsys.readouterr().err  # no silent overwrite
    assert main(argv + ["--resume"]) == 0 and calls == []
    assert {p: p.stat().st_mtime_ns for p in out.rglob("runs/*.csv")} == before
    assert len(json.loads((out / "study.json").read_text())["sessions"]) == 2  # both sessions' wall time counted
    # an interrupted run (its CSV short of the evaluations) is the only one run again
    cut = out / "weights" / _csv(out / "weights" / "summary.csv")[3]["log"]
    cut.write_text("".join(cut.read_text().splitlines(keepends=True)[:2]))
    assert main(argv + ["--resume"]) == 0 and len(calls) == 1
    assert len(go.read_log(cut)) == int(_csv(out / "weights" / "summary.csv")[3]["evaluations"])
    assert main(argv[:-1] + ["--iterations", "3", "--no-progress", "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err and len(calls) == 1


@pytest.mark.parametrize("extra, expect", [
    (["--weights", "vgg19"], "must be NAME=FILE"),
    (["--weights", "vgg19=missing.pth"], "missing.pth: no such weights file for vgg19"),
    (["--backbones", "vgg16-caffe", "alexnet"], "unknown backbone 'alexnet'"),
    (["--weights", "resnet50=x.pth", "--backbones", "vgg16-caffe"], "not among the backbones"),
    (["--content", "nope.png"], "nope.png: no such image"),
])
def test_study_bad_inputs_are_one_line_errors(extra, expect, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "st"
    assert main(["study", "--out", str(out), "--quick", "--no-download", "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gatys: error: ") and expect in lines[0], err
    assert not out.exists()


def test_study_defaults_are_bundled():
    from gatys.commands.study import DEFAULT_CONTENT, DEFAULT_STYLES
    assert DEFAULT_CONTENT.is_file() and all(s.is_file() for s in DEFAULT_STYLES) and len(DEFAULT_STYLES) == 2
    assert any(math.isclose(f, 1.0) for f in STYLE_WEIGHT_FACTORS)  # the default ratio is one of the row
