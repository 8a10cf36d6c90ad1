"""The .fst model file: what save_model writes, load_model gives back — weights, architecture, styles
with their hashes and thumbnails, the training configuration — in fp32 and in half precision."""
from __future__ import annotations

import pytest
import torch

from fastst.modelfile import StyleInfo, load_model, save_model
from fastst.transformer import TransformerNet


@pytest.mark.parametrize("half", [False, True])
def test_save_then_load_gives_the_model_back(tmp_path, half):
    torch.manual_seed(0)
    net = TransformerNet(num_styles=2, residual_blocks=3, width=4, output="sigmoid")
    with torch.no_grad():
        for norm in net.norms():
            norm.scale.uniform_(0.5, 1.5)
            norm.shift.uniform_(-0.5, 0.5)
    thumb = torch.arange(3 * 4 * 5, dtype=torch.uint8).view(3, 4, 5)
    styles = [StyleInfo("mosaic", sha256="ab" * 32, thumbnail=thumb), StyleInfo("starry", sha256="", thumbnail=None)]
    config = {"steps_done": 12, "image_size": 64, "style_layers": ["relu1_2", "relu2_2"]}
    model = load_model(save_model(tmp_path / "m.fst", net, styles, config, half=half))
    got = model.net
    assert (got.num_styles, len(got.residual), got.width, got.output) == (2, 3, 4, "sigmoid")
    assert not got.training and not any(p.requires_grad for p in got.parameters())
    state, saved = net.state_dict(), got.state_dict()
    assert saved.keys() == state.keys() and all(v.dtype == torch.float32 for v in saved.values())
    for key, value in state.items():  # half: exactly the fp16-rounded weights, back in fp32
        expected = value.half().float() if half else value
        assert torch.equal(saved[key], expected), key
    assert model.style_names == ["mosaic", "starry"]
    assert [s.sha256 for s in model.styles] == ["ab" * 32, ""]
    assert torch.equal(model.styles[0].thumbnail, thumb) and model.styles[1].thumbnail is None
    assert model.config == config and model.path == tmp_path / "m.fst"
    if not half:  # the same weights compute the same picture
        x, w = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1)), torch.tensor([[0.3, 0.7]])
        with torch.no_grad():
            assert torch.equal(got(x, w), net.eval()(x, w))
