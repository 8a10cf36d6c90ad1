"""Making runs comparable: the fixed scorer (one objective for every output), and the weights that
give another backbone the default balance of content, style and TV."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from fastst.errors import FaststError
from fastst.hardware import resolve_device
from fastst.images import resize_exact, resize_long_side
from fastst.objectives.gatys import GatysObjective
from fastst.objectives.settings import DEFAULT_CONTENT_WEIGHT, DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT, default_layers

from .defaults import MIN_PYRAMID_SIDE, SCORER_BACKBONE
from .inputs import Image, as_image, image_list, loss_network


def matched_weights(backbone: str, content: Image, style: Image, content_layers: Sequence[str] | None = None,
                    style_layers: Sequence[str] | None = None, size: int = 256,
                    device: str | torch.device = "cpu") -> dict[str, float]:
    """Weights giving `backbone` (and layers) the same content:style:tv balance as the defaults give
    vgg16-caffe, from the content and style terms both networks measure on one seeded noise image.
    Needed because feature scales differ: torchvision-normalised inputs give ~1/30 of Caffe's features,
    so content terms shrink ~1e3x and style terms ~1e6x."""
    c_img = resize_long_side(as_image(content), size)
    s_img = resize_long_side(as_image(style), size)
    noise = torch.rand(c_img.shape, generator=torch.Generator().manual_seed(0))
    dev = resolve_device(device)

    def terms(bb: str, cl: Sequence[str] | None, sl: Sequence[str] | None) -> tuple[float, float]:
        dc, ds = default_layers(bb)
        cl, sl = list(cl or dc), list(sl or ds)
        net = loss_network(bb, list(dict.fromkeys(cl + sl)), dev)
        objective = GatysObjective(net, c_img.to(dev), [s_img.to(dev)], cl, sl, None, 1.0, 1.0, 0.0)
        with torch.no_grad():
            t = objective.terms(noise.to(dev))
        return float(t["content"]), float(t["style"])

    ref_c, ref_s = terms(SCORER_BACKBONE, None, None)
    c, s = terms(backbone, content_layers, style_layers)
    if min(ref_c, ref_s, c, s) <= 0:
        raise FaststError(f"cannot match weights for backbone {backbone}: a loss term is zero on the probe image")
    content_ratio = c / ref_c  # how much larger this backbone's content term is
    return {"content_weight": DEFAULT_CONTENT_WEIGHT,
            "style_weight": DEFAULT_STYLE_WEIGHT * content_ratio * ref_s / s,
            "tv_weight": DEFAULT_TV_WEIGHT * content_ratio}


def score(content: Image, styles: Sequence[Image] | Image, output: Image, style_blend: Sequence[float] | None = None,
          style_scale: float = 1.0, device: str | torch.device = "cpu", per_layer: bool = False) -> dict[str, float]:
    """Score an output under one fixed objective (vgg16-caffe, Gatys' default layers and weights,
    fp32) at the output's size, so results of any backbone, layers, weights or method compare;
    `per_layer` adds each style layer's share of the style term as "style_<layer>"."""
    out = as_image(output)
    h, w = out.shape[-2:]
    dev = resolve_device(device)
    c_layers, s_layers = default_layers(SCORER_BACKBONE)
    net = loss_network(SCORER_BACKBONE, list(dict.fromkeys(c_layers + s_layers)), dev)
    c = resize_exact(as_image(content), h, w)
    side = max(MIN_PYRAMID_SIDE // 2, round(style_scale * max(h, w)))
    s_imgs = [resize_long_side(as_image(s), side).to(dev) for s in image_list(styles)]
    objective = GatysObjective(net, c.to(dev), s_imgs, c_layers, s_layers, style_blend, bf16=False)
    with torch.no_grad():
        return {k: float(v) for k, v in objective.terms(out.to(dev), per_layer).items()}
