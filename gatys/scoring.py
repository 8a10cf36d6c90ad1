"""Making runs comparable: the fixed scorer (one objective for every output), and the weights that
give another backbone the default balance of content, style and TV."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from fastst.errors import FaststError
from fastst.hardware import resolve_device
from fastst.images import resize_exact
from fastst.lossnet import LossNetwork
from fastst.objectives.gatys import GatysObjective
from fastst.objectives.settings import DEFAULT_CONTENT_WEIGHT, DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT, default_layers

from .defaults import SCORER_BACKBONE
from .inputs import Image, as_image, image_list, level_images, loss_network


def matched_weights(backbone: str, content: Image, style: Image, content_layers: Sequence[str] | None = None,
                    style_layers: Sequence[str] | None = None, size: int = 256,
                    device: str | torch.device = "cpu") -> dict[str, float]:
    """Weights giving `backbone` (and layers) the same content:style:tv balance as the defaults give
    vgg16-caffe, from the content and style terms both networks measure on one seeded noise image.
    Needed because feature scales differ: torchvision-normalised inputs give ~1/30 of Caffe's features,
    so content terms shrink ~1e3x and style terms ~1e6x."""
    images = as_image(content), [as_image(style)]
    dev = resolve_device(device)

    def terms(bb: str, cl: Sequence[str] | None, sl: Sequence[str] | None) -> tuple[float, float]:
        dc, ds = default_layers(bb)
        cl, sl = list(cl or dc), list(sl or ds)
        net = loss_network(bb, list(dict.fromkeys(cl + sl)), dev)
        c_img, s_imgs = level_images(net, *images, size, 1.0, (content, style))  # both at `size`
        noise = torch.rand(c_img.shape, generator=torch.Generator().manual_seed(0))
        objective = GatysObjective(net, c_img.to(dev), [s_imgs[0].to(dev)], cl, sl, None, 1.0, 1.0, 0.0)
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


def scorer_network(device: str | torch.device = "cpu") -> LossNetwork:
    """The fixed scorer's loss network: vgg16-caffe with Gatys' default layers, on `device`."""
    c_layers, s_layers = default_layers(SCORER_BACKBONE)
    return loss_network(SCORER_BACKBONE, list(dict.fromkeys(c_layers + s_layers)), device)


def score(content: Image, styles: Sequence[Image] | Image, output: Image, style_blend: Sequence[float] | None = None,
          style_scale: float = 1.0, device: str | torch.device = "cpu", per_layer: bool = False) -> dict[str, float]:
    """Score an output under one fixed objective (vgg16-caffe, Gatys' default layers and weights,
    fp32) at the output's size, so results of any backbone, layers, weights or method compare;
    `per_layer` adds each style layer's share of the style term as "style_<layer>"."""
    out = as_image(output)
    h, w = out.shape[-2:]
    dev = resolve_device(device)
    net = scorer_network(dev)
    style_list = image_list(styles)
    c, s_imgs = level_images(net, resize_exact(as_image(content), h, w), [as_image(s) for s in style_list],
                             max(h, w), style_scale, [content, *style_list])
    objective = GatysObjective(net, c.to(dev), [s.to(dev) for s in s_imgs], *default_layers(SCORER_BACKBONE),
                               style_blend, bf16=False)
    with torch.no_grad():
        return {k: float(v) for k, v in objective.terms(out.to(dev), per_layer).items()}
