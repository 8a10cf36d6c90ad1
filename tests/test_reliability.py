"""Small reliability faults, each pinned: an .onnx model finds its style images by the hashes it stores,
PIL's decompression-bomb warning is one fastst warning, quoted errors are never cut mid-word,
and a blend of huge weights is a blend, not an overflow."""
from __future__ import annotations

import logging
import warnings

import pytest
import torch
from PIL import Image

from conftest import synthetic_image, write_png
from fastst.errors import first_line
from fastst.images import load_pil
from fastst.inference.planning import parse_styles
from fastst.modelfile import StyleInfo, StyleModel, file_sha256, load_model, save_model
from fastst.transformer import TransformerNet


def test_an_onnx_export_keeps_what_refine_finds_its_style_images_by(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from export.onnx_export import export_onnx
    from export.runtime import OnnxModel
    from gatys.refine import find_style_image

    styles = tmp_path / "styles"
    styles.mkdir()
    a = write_png(styles / "a.png", synthetic_image(32, 32, seed=1))
    b = write_png(styles / "b.png", synthetic_image(32, 32, seed=2))
    torch.manual_seed(0)
    path = save_model(tmp_path / "m.fst", TransformerNet(2, residual_blocks=1, width=4),
                      [StyleInfo("a", file_sha256(a)), StyleInfo("b", file_sha256(b))], {"style_images": ["x", "y"]})
    export_onnx(load_model(path), tmp_path / "m.onnx", verify=False)
    onnx_model = OnnxModel(tmp_path / "m.onnx")
    assert [s.sha256 for s in onnx_model.styles] == [file_sha256(a), file_sha256(b)]
    assert onnx_model.config["style_images"] == ["x", "y"]
    assert find_style_image(onnx_model, 1, [styles]) == b  # by hash, whatever its name


def test_decompression_bomb_warning_is_one_fastst_warning(tmp_path, monkeypatch, caplog):
    path = tmp_path / "big.png"
    Image.new("RGB", (40, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1200 px: over the warning limit, under the error one
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a raw warning would fail the test
        with caplog.at_level(logging.WARNING, logger="fastst"):
            assert load_pil(path).size == (40, 30)
            load_pil(path)  # every time, not once per process
    bombs = [r for r in caplog.records if "very large image" in r.getMessage()]
    assert len(bombs) == 2 and "40x30" in bombs[0].getMessage()


def test_quoted_errors_are_cut_at_a_word():
    e = ValueError("word " * 100)
    cut = first_line(e, 42)
    assert cut.endswith(" …") and len(cut) <= 44 and cut[:-2].split(" ")[-1] == "word"
    assert first_line(ValueError("short\nsecond line")) == "short"
    assert first_line(KeyError()) == "KeyError"


def test_huge_blend_weights_are_a_blend():
    model = StyleModel(TransformerNet(2, residual_blocks=0, width=1), [StyleInfo("a"), StyleInfo("b")])
    [(label, blend)] = parse_styles(model, ["a=1e308", "b=1e308"])
    assert blend == {"a": 0.5, "b": 0.5} and label == "a50+b50"
