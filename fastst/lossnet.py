"""The frozen loss network: named activations of a pretrained CNN, truncated after the deepest
layer asked for, with the backbone's own input normalisation inside. Its weights come from
`fastst.backbones`."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .backbones import resolve_backbone, vgg_features
from .errors import FaststError

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
        arch, normalization, state, full = resolve_backbone(self.backbone)
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
            features = full.features if full is not None else vgg_features(arch)
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

    def min_side(self, layers: Sequence[str] | None = None) -> int:
        """The smallest height and width of an image whose `layers` (default: every layer built) this
        network computes. A VGG halves its map at every pooling and fails on a 1-px one, so a layer
        after n poolings needs 2ⁿ px (8 for relu4_3, 16 for relu5_1, 32 for pool5); ResNet50's strided
        convolutions and pooling pad, so any size passes. Measured on every side from 1 to 40 px for
        VGG16, VGG19 (max and avg pooling) and ResNet50."""
        if not self.arch.startswith("vgg"):
            return 1
        return 2 ** sum(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in self.body[: self._deepest(layers) + 1])

    def check_size(self, image: torch.Tensor, source: str | os.PathLike | None = None, what: str = "image",
                   layers: Sequence[str] | None = None) -> None:
        """FaststError naming `source` (the file the image came from) when `image` (..., H, W), `what`
        as the message calls it, is too small on a side for `layers` (`min_side`): the network would
        otherwise fail deep inside ("Output size is too small")."""
        h, w = image.shape[-2:]
        need = self.min_side(layers)
        if min(h, w) < need:
            raise FaststError(f"{what} is {w}x{h} px, too small for the loss network: {self.backbone} needs at "
                              f"least {need} px a side up to {self.names[self._deepest(layers)]}", source)

    def _deepest(self, layers: Sequence[str] | None) -> int:
        """The index in `names` of the deepest of `layers` (default: of the last layer built)."""
        return len(self.names) - 1 if layers is None else max(self.names.index(n) for n in layers)

    def train(self, mode: bool = True) -> LossNetwork:
        return super().train(False)  # always frozen: batch norm (ResNet) stays in eval mode

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] to what the backbone was trained on: (x − mean) / std, which for the Caffe-trained
        VGG16 means the 0–255 scale minus its mean pixel, with the channels flipped to BGR."""
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
