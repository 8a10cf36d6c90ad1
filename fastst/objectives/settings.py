"""Default layers and weights of the two objectives, and Gatys' objective in the trainer's terms.
Torch-free, so that command lines can show these defaults in their help at once."""
from __future__ import annotations

import re
from typing import Any

from ..errors import FaststError

# Johnson et al.'s perceptual loss, which the fast trainer minimises by default
PERCEPTUAL_CONTENT_LAYERS = ("relu2_2",)
PERCEPTUAL_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
PERCEPTUAL_CONTENT_WEIGHT = 1.0
PERCEPTUAL_STYLE_WEIGHT = 5.0
PERCEPTUAL_TV_WEIGHT = 1e4

# Gatys et al.'s layers (content, style) per backbone family; stage outputs for ResNet
GATYS_LAYERS = {
    "vgg": (("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
    "resnet": (("layer3",), ("conv1", "layer1", "layer2", "layer3", "layer4")),
}
# Gatys' α, β and TV weight, tuned for vgg16-caffe (Caffe-scale features, 0..255 inputs) with L-BFGS,
# 300 evaluations, 512 px; the Gatys documentation tells how they were chosen and how they scale with other
# backbones.
DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 5e3
DEFAULT_TV_WEIGHT = 1e5
# With normalised gradients (neural-style's -normalize_gradients) each layer's gradient has L1 norm α or
# β/|L|, whatever the backbone's feature scale, and TV (not normalised) needs a far smaller weight. Chosen
# on Starry Night at 256 px, 100 L-BFGS evaluations: a picture like the default run's.
NORMALIZED_CONTENT_WEIGHT = 10.0
NORMALIZED_STYLE_WEIGHT = 100.0
NORMALIZED_TV_WEIGHT = 0.01

VGG_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}  # channels of every VGG layer in block N


def default_layers(backbone: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Gatys' default (content, style) layers for a backbone name or weights file."""
    family = "resnet" if "resnet" in str(backbone).lower() else "vgg"
    return GATYS_LAYERS[family]


def default_weights(normalize_gradients: bool = False) -> tuple[float, float, float]:
    """Gatys' default (content, style, tv) weights, for plain or normalised gradients."""
    if normalize_gradients:
        return NORMALIZED_CONTENT_WEIGHT, NORMALIZED_STYLE_WEIGHT, NORMALIZED_TV_WEIGHT
    return DEFAULT_CONTENT_WEIGHT, DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT


def _vgg_block(layer: str) -> int:
    m = re.fullmatch(r"(?:relu|conv)([1-5])_\d", layer)
    if not m:
        raise FaststError(f"the gatys objective needs VGG layer names (reluN_M), not '{layer}'")
    return int(m.group(1))


def gatys_objective(size: int, content_weight: float | None = None, style_weight: float | None = None,
                    tv_weight: float | None = None) -> dict[str, Any]:
    """Perceptual-objective settings (TrainConfig fields) whose loss is Gatys' objective (his layers and
    α, β, TV weights) on a size×size output, divided by the content layer's element count: training on
    it makes a model that minimises what per-image optimisation and the fixed scorer measure at that size.

    Gatys sums squared content differences and weights layer l's Gram term by β·C_l²/(4·|L|) in the
    fastst Gram normalisation; the trainer averages both, so each style layer gets β·C_l²/(4·|L|·C·h·w)
    with C·h·w the content layer's element count, and TV (summed over 3·size² pixels) γ·3·size²/(C·h·w).
    """
    content_layers, style_layers = GATYS_LAYERS["vgg"]
    alpha = DEFAULT_CONTENT_WEIGHT if content_weight is None else content_weight
    beta = DEFAULT_STYLE_WEIGHT if style_weight is None else style_weight
    gamma = DEFAULT_TV_WEIGHT if tv_weight is None else tv_weight
    block = _vgg_block(content_layers[0])
    elements = VGG_CHANNELS[block] * (size / 2 ** (block - 1)) ** 2
    return dict(content_layers=tuple(content_layers), style_layers=tuple(style_layers),
                content_weight=float(alpha), style_weight=1.0,
                style_layer_weights=tuple(beta * VGG_CHANNELS[_vgg_block(n)] ** 2 / (4 * len(style_layers) * elements)
                                          for n in style_layers),
                tv_weight=gamma * 3 * size ** 2 / elements)
