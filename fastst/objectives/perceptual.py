"""Johnson et al.'s perceptual loss ("Perceptual Losses for Real-Time Style Transfer", 2016), which the
fast trainer minimises: α·content + β·Σ_l w_l·style_l + γ·tv, every term a mean over its elements."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..losses import content_loss, gram_matrix, style_loss, total_variation
from ..lossnet import LossNetwork
from .settings import (
    PERCEPTUAL_CONTENT_LAYERS,
    PERCEPTUAL_CONTENT_WEIGHT,
    PERCEPTUAL_STYLE_LAYERS,
    PERCEPTUAL_STYLE_WEIGHT,
    PERCEPTUAL_TV_WEIGHT,
)


class PerceptualObjective:
    """The loss of a batch of outputs against their photos (content) and their styles' Gram targets.

    Holds only the layers and weights; the frozen loss network is passed in, so that its owner (a
    LightningModule) keeps it as a submodule and moves it with the rest.
    """

    def __init__(self, content_layers: Sequence[str] = PERCEPTUAL_CONTENT_LAYERS,
                 style_layers: Sequence[str] = PERCEPTUAL_STYLE_LAYERS,
                 content_weight: float = PERCEPTUAL_CONTENT_WEIGHT, style_weight: float = PERCEPTUAL_STYLE_WEIGHT,
                 tv_weight: float = PERCEPTUAL_TV_WEIGHT, style_layer_weights: Sequence[float] | None = None) -> None:
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        self.weights = (float(content_weight), float(style_weight), float(tv_weight))
        self.layer_weights = dict(zip(self.style_layers, style_layer_weights)) if style_layer_weights else None

    @property
    def layers(self) -> list[str]:
        """Every layer the loss network must compute, content layers first."""
        return list(dict.fromkeys(self.content_layers + self.style_layers))

    def style_targets(self, lossnet: LossNetwork, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The Gram matrices (C, C) of one style image (3, H, W) at the style layers."""
        with torch.no_grad():
            feats = lossnet(image.unsqueeze(0), self.style_layers)
        return {name: gram_matrix(feats[name])[0] for name in self.style_layers}

    def terms(self, lossnet: LossNetwork, out: torch.Tensor, images: torch.Tensor,
              grams: Mapping[str, torch.Tensor], skip_zero: bool = False,
              style_scale: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Content, style and TV terms and their weighted sum ("loss") of outputs `out` (N, 3, H, W)
        for photos `images`, with `grams` each output's style targets ({layer: (N, C, C)}).
        `skip_zero`: with content and style weights both 0, leave the loss network out (TV only).
        `style_scale` (N,): each sample's style term scaled by its entry, the mean over samples kept
        (the "style" entry is then the scaled mean)."""
        a, b, g = self.weights
        if skip_zero and a == 0 and b == 0:
            tv = total_variation(out.float())
            return {"loss": g * tv, "tv": tv}
        with torch.no_grad():
            target = lossnet(images, self.content_layers)
        feats = lossnet(out)
        content = sum(content_loss(feats[n], target[n]) for n in self.content_layers)
        # Gram matrices in the autocast dtype: 3x faster than fp32 and rounding well below SGD's noise
        if style_scale is None:
            style = style_loss(feats, {n: grams[n] for n in self.style_layers}, self.layer_weights, gram_fp32=False)
        else:  # per sample: the batch's mean is the mean of the samples' means (equal sizes)
            style = torch.stack([style_loss({n: feats[n][i:i + 1] for n in self.style_layers},
                                            {n: grams[n][i:i + 1] for n in self.style_layers}, self.layer_weights,
                                            gram_fp32=False) * style_scale[i] for i in range(out.shape[0])]).mean()
        tv = total_variation(out.float())
        return {"loss": a * content + b * style + g * tv, "content": content, "style": style, "tv": tv}
