"""Gatys et al.'s objective ("Image Style Transfer Using Convolutional Neural Networks", 2016) for one
content image and blended style targets: what per-image optimisation minimises and the fixed scorer reports."""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from ..losses import blended_grams, content_loss, gram_matrix, style_loss, total_variation
from ..lossnet import LossNetwork
from .settings import DEFAULT_CONTENT_WEIGHT, DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT


class GatysObjective:
    """α·content + β·style + tv_weight·tv for one content image and blended style targets.

    content: Σ over content layers of Σ (F − P)²; style: Σ_l (1/|L|) · ¼ Σ (G_l − A_l)² with Gram
    matrices normalised by C·H·W (= 1/(4N²M²) Σ (G_raw − A_raw)², Gatys' E_l); tv: Σ |neighbour
    differences| of the [0, 1] image. Targets are computed once, without gradients. With
    `normalize_gradients` the values are the same, but each layer's gradient reaches the features
    with L1 norm α or β/|L| (neural-style's -normalize_gradients).
    """

    def __init__(self, net: LossNetwork, content: torch.Tensor, styles: Sequence[torch.Tensor],
                 content_layers: Sequence[str], style_layers: Sequence[str],
                 style_blend: Sequence[float] | None = None, content_weight: float = DEFAULT_CONTENT_WEIGHT,
                 style_weight: float = DEFAULT_STYLE_WEIGHT, tv_weight: float = DEFAULT_TV_WEIGHT,
                 bf16: bool = False, normalize_gradients: bool = False) -> None:
        self.net = net
        self.normalize_gradients = bool(normalize_gradients)
        self.content_layers = list(content_layers)
        self.style_layers = list(style_layers)
        self.weights = (float(content_weight), float(style_weight), float(tv_weight))
        self.bf16 = bool(bf16)
        self.layer_weights = {name: 1.0 / len(self.style_layers) for name in self.style_layers}
        blend = list(style_blend) if style_blend is not None else [1.0] * len(styles)
        with torch.no_grad():
            feats = self.features(_batch(content))
            self.content_targets = {n: feats[n].detach().float() for n in self.content_layers}
            grams = []
            for style in styles:
                sf = self.features(_batch(style))
                grams.append({n: gram_matrix(sf[n]).detach() for n in self.style_layers})
        self.style_targets = blended_grams(grams, blend)

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss-network activations, under bf16 autocast when enabled (the image stays fp32)."""
        device = images.device.type
        ctx = torch.autocast(device, dtype=torch.bfloat16) if self.bf16 and device in ("cpu", "cuda") \
            else contextlib.nullcontext()
        with ctx:
            return self.net(images)

    def terms(self, image: torch.Tensor, per_layer: bool = False) -> dict[str, torch.Tensor]:
        """The unweighted content, style and tv terms and the weighted total, as 0-d tensors;
        `per_layer` adds each style layer's share of the style term as "style_<layer>"."""
        x = _batch(image)
        feats = self.features(x)
        a, b, t = self.weights
        content_feats, style_feats = feats, feats
        if self.normalize_gradients and torch.is_grad_enabled():  # each layer's loss gets its own branch
            content_feats = {n: NormalizedGradient.apply(feats[n], a) for n in self.content_layers}
            style_feats = {n: NormalizedGradient.apply(feats[n], b * self.layer_weights[n]) for n in self.style_layers}
        c = sum(content_loss(content_feats[n], self.content_targets[n], "sum") for n in self.content_layers)
        shares = {n: style_loss({n: style_feats[n]}, {n: self.style_targets[n]}, self.layer_weights,
                                reduction="sum", scale=0.25) for n in self.style_layers}
        s = sum(shares.values())
        tv = total_variation(x, "sum")
        extra = {f"style_{n}": v for n, v in shares.items()} if per_layer else {}
        return {"content": c, "style": s, "tv": tv, "total": a * c + b * s + t * tv, **extra}


class NormalizedGradient(torch.autograd.Function):
    """Identity forward; the backward rescales the incoming gradient to L1 norm `weight`
    (jcjohnson/neural-style's -normalize_gradients: each loss layer's gradient divided by its
    own L1 norm, then multiplied by that loss's weight)."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, weight: float) -> torch.Tensor:  # noqa: ANN001
        ctx.weight = weight
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        norm = grad.abs().sum(dtype=torch.float32) + 1e-8  # a tensor: no device sync on a GPU
        return grad * (ctx.weight / norm).to(grad.dtype), None


def _batch(image: torch.Tensor) -> torch.Tensor:
    return image if image.dim() == 4 else image.unsqueeze(0)
