"""Second implementations that tests score fastst's results with: the loss network as torchvision's own
VGG16 with the vgg16-caffe weights (Caffe preprocessing written out), and the published Gatys et al. and
Johnson et al. objectives written from their formulas. Nothing here uses fastst.lossnet, fastst.losses or
fastst.objectives, so a bug there cannot hide by also being in the expected value."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torchvision

# torchvision's vgg16().features indices of the ReLUs (Simonyan & Zisserman's configuration D)
RELU = {"relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
        "relu4_1": 18, "relu4_2": 20, "relu4_3": 22, "relu5_1": 25, "relu5_2": 27, "relu5_3": 29}
CAFFE_MEAN_BGR = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)


class CaffeVGG16:
    """torchvision's VGG16 convolutions holding the vgg16-caffe weights (which test_lossnet checks against
    onnxruntime running the source file); input: RGB in [0, 1], turned into Caffe's BGR 0-255 minus the mean."""

    def __init__(self, normalization: str = "caffe") -> None:
        from fastst.backbones import load_vgg16_caffe  # the weights only: a state dict of plain tensors

        self.features = torchvision.models.vgg16().features.eval().requires_grad_(False)
        self.features.load_state_dict(load_vgg16_caffe()[0])
        for m in self.features:
            if isinstance(m, torch.nn.ReLU):
                m.inplace = False
        self.normalization = normalization

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        if self.normalization == "caffe":
            return image.flip(1) * 255.0 - CAFFE_MEAN_BGR
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # torchvision's ImageNet normalisation
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return (image - mean) / std

    def __call__(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        x = self.preprocess(image if image.dim() == 4 else image.unsqueeze(0))
        out, last = {}, max(RELU[n] for n in layers)
        for i, module in enumerate(self.features[:last + 1]):
            x = module(x)
            out.update({n: x for n in layers if RELU[n] == i})
        return out


def raw_gram(f: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C): F·Fᵀ, summed over positions, in fp64."""
    m = f.double().flatten(2)
    return m @ m.transpose(1, 2)


def gatys_terms(vgg: CaffeVGG16, content: torch.Tensor, styles: Sequence[torch.Tensor], output: torch.Tensor,
                content_layers: Sequence[str], style_layers: Sequence[str],
                weights: tuple[float, float, float], blend: Sequence[float] | None = None) -> dict[str, float]:
    """Gatys, Ecker & Bethge 2016 (eq. 1-7): content Σ_l Σ (F - P)²; style Σ_l w_l E_l with
    E_l = 1/(4 N_l² M_l²) Σ (G - A)² and w_l = 1/|L|, A the blend of the styles' Gram matrices; each Gram
    taken per position (G/M with its own image's M), so that a style image of another size compares (for
    equal sizes this is the paper's E_l); total variation Σ |x_{i+1,j} - x_ij| + |x_{i,j+1} - x_ij| of the
    [0, 1] image; total α·c + β·s + γ·tv."""
    layers = list(dict.fromkeys([*content_layers, *style_layers]))
    with torch.no_grad():
        f, p = vgg(output, layers), vgg(content, layers)
        grams = [{n: raw_gram(v) / (v.shape[-2] * v.shape[-1]) for n, v in vgg(s, style_layers).items()}
                 for s in styles]
    blend = [1.0] * len(styles) if blend is None else list(blend)
    c = sum(float(((f[n].double() - p[n].double()) ** 2).sum()) for n in content_layers)
    s = 0.0
    for n in style_layers:
        a = sum(w * g[n] for w, g in zip(blend, grams)) / sum(blend)
        _, channels, h, w = f[n].shape
        s += float(((raw_gram(f[n]) / (h * w) - a) ** 2).sum()) / (4 * channels ** 2) / len(style_layers)
    x = (output if output.dim() == 4 else output.unsqueeze(0)).double()
    tv = float((x[..., 1:, :] - x[..., :-1, :]).abs().sum() + (x[..., :, 1:] - x[..., :, :-1]).abs().sum())
    alpha, beta, gamma = weights
    return {"content": c, "style": s, "tv": tv, "total": alpha * c + beta * s + gamma * tv}


def perceptual_terms(vgg: CaffeVGG16, output: torch.Tensor, photo: torch.Tensor, style: torch.Tensor,
                     content_layers: Sequence[str], style_layers: Sequence[str],
                     weights: tuple[float, float, float],
                     layer_weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Johnson, Alahi & Fei-Fei 2016 (eq. 2-5), every term a mean: content ‖φ(ŷ) - φ(y)‖² / (C·H·W); style
    Σ_l w_l ‖G(ŷ) - G(s)‖²_F / C_l² with G = φφᵀ / (C·H·W); TV the mean absolute vertical plus the mean absolute
    horizontal neighbour difference; loss α·content + β·style + γ·tv. One output, photo and style image."""
    layers = list(dict.fromkeys([*content_layers, *style_layers]))
    with torch.no_grad():
        f, p, s = vgg(output, layers), vgg(photo, content_layers), vgg(style, style_layers)
    content = sum(float(((f[n].double() - p[n].double()) ** 2).mean()) for n in content_layers)

    def gram(v: torch.Tensor) -> torch.Tensor:
        _, c, h, w = v.shape
        return raw_gram(v) / (c * h * w)

    style_term = sum((1.0 if layer_weights is None else layer_weights[n])
                     * float(((gram(f[n]) - gram(s[n])) ** 2).mean()) for n in style_layers)
    x = (output if output.dim() == 4 else output.unsqueeze(0)).double()
    tv = float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean())
    alpha, beta, gamma = weights
    return {"content": content, "style": style_term, "tv": tv,
            "loss": alpha * content + beta * style_term + gamma * tv}
