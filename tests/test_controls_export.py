"""Exports carry strength and stroke: the metadata lists the rows (name, kind, group, style size) and
the default strength, and the raw row-weight input accepts what fastst.controls composes (including the
negative identity weight of a strength above 1), matching PyTorch."""
from __future__ import annotations

import copy
import json
import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from fastst.modelfile import StyleInfo, load_model, save_model
from fastst.transformer import TransformerNet

ROWS = [StyleInfo("waves", group="waves", style_size=256), StyleInfo("waves@512", group="waves", style_size=512),
        StyleInfo("sun"), StyleInfo("identity", kind="identity"),
        StyleInfo("sun~0.5", kind="strength", group="sun", strength=0.5)]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = TransformerNet(num_styles=len(ROWS), width=8)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for norm in net.norms():
            norm.scale.copy_(0.5 + torch.rand(norm.scale.shape, generator=g))
            norm.shift.copy_(0.6 * torch.rand(norm.shift.shape, generator=g) - 0.3)
    return save_model(tmp_path_factory.mktemp("controls") / "rows.fst", net, ROWS, default_strength=0.7)


def mixes(model) -> list[list[float]]:
    """Strength 0.5 of a stroke-interpolated group, of a blend (sun's half on its strength row), 0.25 of
    sun (between identity and its strength row), and an extrapolated 1.5."""
    return [model.mix("waves", 0.5, stroke=0.4).weights, model.mix({"waves": 1, "sun": 1}, 0.5).weights,
            model.mix("sun", 0.25).weights, model.mix("sun", 1.5).weights]


def test_onnx_takes_composed_weights_and_lists_the_rows(model_file: Path, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    from export.onnx_export import export_onnx

    model = load_model(model_file)
    path = tmp_path / "rows.onnx"
    export_onnx(model, path)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["rows"]) == [
        {"name": "waves", "kind": "style", "group": "waves", "style_size": 256},
        {"name": "waves@512", "kind": "style", "group": "waves", "style_size": 512},
        {"name": "sun", "kind": "style", "group": "sun", "style_size": None},
        {"name": "identity", "kind": "identity", "group": "identity", "style_size": None},
        {"name": "sun~0.5", "kind": "strength", "group": "sun", "style_size": None, "strength": 0.5}]
    assert json.loads(meta["default_strength"]) == 0.7
    from export.runtime import OnnxModel

    assert OnnxModel(path).mix("sun", 0.25).weights == model.mix("sun", 0.25).weights  # the rows read back
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = torch.rand(1, 3, 36, 52, generator=torch.Generator().manual_seed(2))
    for weights in mixes(model):
        w = torch.tensor([weights])
        got = session.run(None, {"image": image.numpy(), "style": w.numpy()})[0]
        with torch.no_grad():
            want = model.net(image, w).numpy()
        assert np.abs(got - want).max() < 1e-4, weights


def test_coreml_lists_the_rows_and_its_traced_network_takes_composed_weights(model_file: Path, tmp_path: Path) -> None:
    """Core ML converts the traced ExportNet (unfused norms); its spec carries the rows. Predictions run only
    on macOS, so here the traced network Core ML converts is checked against PyTorch at s = 0.5 and 1.5."""
    import coremltools as ct

    from export.coreml_export import export_coreml
    from export.wrapper import ExportNet

    model = load_model(model_file)
    path = tmp_path / "rows.mlpackage"
    export_coreml(model, path, precision="fp32", sizes=[(64, 64), (64, 96)])
    meta = ct.utils.load_spec(str(path)).description.metadata.userDefined
    assert [r["name"] for r in json.loads(meta["rows"])] == [s.name for s in ROWS]
    assert json.loads(meta["default_strength"]) == 0.7
    traced = torch.jit.trace(ExportNet(copy.deepcopy(model.net), pad=False, fused_norm=False).eval(),
                             (torch.rand(1, 3, 64, 64), torch.full((1, len(ROWS)), 0.25)))
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    for weights in mixes(model):
        w = torch.tensor([weights])
        with torch.no_grad():
            torch.testing.assert_close(traced(image, w), model.net(image, w), atol=1e-5, rtol=1e-5)
    if platform.system() == "Darwin":
        from PIL import Image
        mlmodel = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        pil = Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        w = torch.tensor([mixes(model)[0]])
        got = np.asarray(mlmodel.predict({"image": pil, "style": w.numpy()})["stylized"].convert("RGB"))
        with torch.no_grad():
            want = model.net(torch.from_numpy(np.asarray(pil)).permute(2, 0, 1)[None].float() / 255, w)[0]
        assert np.abs(got.astype(np.float32) / 255 - want.permute(1, 2, 0).numpy()).max() < 0.01


def test_web_manifest_lists_strength_rows(model_file: Path) -> None:
    """`fastst export --web`'s model.json carries a strength row with its strength (the page's
    controls.js follows the path through it); the page shows no thumbnail of it."""
    from export.web import manifest

    model = load_model(model_file)
    rows = manifest(model, "fp16", "t")["rows"]
    assert rows[-1] == {"name": "sun~0.5", "kind": "strength", "group": "sun", "style_size": None,
                        "thumbnail": None, "strength": 0.5}
    assert all("strength" not in r for r in rows[:-1])
