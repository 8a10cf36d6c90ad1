"""Stylizing images with a trained model: `Stylizer` binds a model to a device and precision and
runs it on batches, whole or in tiles (see `tiling`), with strength and colour preservation;
`stylize()` is the one-call API. `fastst infer` and the video pipeline are layers over this module."""
from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..colors import preserve_colors as _preserve_colors
from ..errors import FaststError
from ..hardware import default_precision, resolve_device
from ..images import load_image, pil_to_tensor, resize_long_side, tensor_to_pil, to_rgb
from ..modelfile import StyleInfo, StyleModel, load_model
from ..transformer import TransformerNet
from .backends import PRECISIONS, ExternalModel, autocast, backend_for_file, channels_last_default, network_dtype
from .tiling import AUTO_TILE, AUTO_TILE_PIXELS, CONTEXT, RAMP, STATS_PIXELS, tiled_forward

StyleSpec = int | str | dict | list | None
ImageLike = torch.Tensor | Image.Image | str | os.PathLike
AnyModel = StyleModel | ExternalModel


def open_model(path: str | os.PathLike | None = None, device: str = "cpu") -> AnyModel:
    """A .fst model file (None: the bundled pretrained model), or a model file of a registered
    external backend (an exported .onnx once `export.runtime` has registered ONNX Runtime)."""
    if path is None:
        return load_model(None)
    backend = backend_for_file(path)
    if backend is not None:
        return backend.open(path, device)
    if Path(path).suffix.lower() == ".onnx":
        raise FaststError("an ONNX model needs the ONNX Runtime backend (register it: export.runtime.register())", path)
    return load_model(path)


def as_model(model: AnyModel | TransformerNet | str | os.PathLike) -> AnyModel:
    """A StyleModel or external model from any of the forms `stylize` accepts."""
    if isinstance(model, StyleModel):
        return model
    if isinstance(model, TransformerNet):
        return StyleModel(net=model.eval(), styles=[StyleInfo(f"style{i}") for i in range(model.num_styles)])
    if isinstance(model, (str, os.PathLike)):
        return open_model(model)
    if isinstance(model, ExternalModel):
        return model
    raise TypeError(f"expected a StyleModel, an external model, a TransformerNet or a model path, "
                    f"got {type(model).__name__}")


class Stylizer:
    """A model bound to a device and precision; call `.batch()` on (N,3,H,W) tensors or use `stylize()`."""

    def __init__(self, model: AnyModel | TransformerNet | str | os.PathLike, device: str | torch.device = "auto",
                 precision: str = "auto", channels_last: bool | None = None) -> None:
        self.model = as_model(model)
        if precision not in PRECISIONS:
            raise FaststError(f"unknown precision '{precision}' (use {', '.join(PRECISIONS)})")
        if not isinstance(self.model, StyleModel):  # an external engine runs its own graph on the CPU side
            if precision not in ("auto", "fp32"):
                raise FaststError(f"precision {precision} applies to the torch backend; a {self.model.backend} "
                                  "model runs in the precision it was exported in", self.model.path)
            self.device, self.precision, self.dtype = torch.device("cpu"), "fp32", torch.float32
            self.channels_last = False
            return
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.precision = default_precision(self.device, "inference") if precision == "auto" else precision
        self.channels_last = channels_last_default(self.device, self.precision) if channels_last is None else channels_last
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.dtype = network_dtype(self.precision)
        net = self.model.net
        if self.dtype != torch.float32 or self.channels_last:  # the caller's model stays fp32 and plain
            net = copy.deepcopy(net)
        self.net = net.eval().requires_grad_(False).to(self.device, self.dtype, memory_format=fmt)

    @property
    def backend(self) -> str:
        """'torch', or the external engine's name."""
        return "torch" if isinstance(self.model, StyleModel) else self.model.backend

    @property
    def style_names(self) -> list[str]:
        return self.model.style_names

    def style_weights(self, style: StyleSpec | torch.Tensor = None, batch: int = 1) -> torch.Tensor:
        """(batch, S) weights for a style index, name, {name: weight} blend or weight list."""
        if isinstance(style, torch.Tensor):
            w = style.float().reshape(-1, len(self.style_names))
            return w.expand(batch, -1).contiguous() if w.shape[0] == 1 else w
        return self.model.style_weights(style, batch)

    def controls(self, style: StyleSpec = None, strength: float | None = None, stroke: float | None = None,
                 batch: int = 1) -> tuple[torch.Tensor, float]:
        """(batch, S) row weights for a style (group or row name, index or {name: weight} blend) at a
        strength (None: the model's default) and stroke, and the pixel blend the strength falls back to
        on a model without an identity row (1.0: none); see fastst.controls."""
        if isinstance(style, (list, tuple)):
            style = {i: float(w) for i, w in enumerate(style)}
        m = self.model.mix(style, strength, stroke)
        return torch.tensor([m.weights]).expand(batch, -1).contiguous(), m.pixel_blend

    def run_network(self, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The torch network on (N,3,H,W) at this device and precision; the output stays there."""
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        x = images.to(self.device, self.dtype, non_blocking=True, memory_format=fmt)
        with torch.inference_mode(), autocast(self.device, self.precision):
            return self.net(x, weights.to(self.device))

    def forward(self, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Run the network once: (N,3,H,W) in [0,1] -> float32 CPU (N,3,H,W), no tiling."""
        if not isinstance(self.model, StyleModel):
            return self.model(images, weights)
        y = self.run_network(images, weights).float().contiguous().cpu()
        return y.clone() if y.is_inference() else y  # a normal tensor: callers may update it in place

    def tiled_forward(self, image: torch.Tensor, weights: torch.Tensor, tile: int, stats: str = "auto",
                      stats_pixels: int = STATS_PIXELS, context: int = CONTEXT, ramp: int = RAMP,
                      post: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                      progress: bool = False) -> torch.Tensor:
        """One image (1,3,H,W) in seam-free tiles of `tile` px: see `tiling.tiled_forward`."""
        if not isinstance(self.model, StyleModel):
            raise FaststError(f"tiling needs the torch backend (a {self.backend} graph normalises each tile on "
                              "its own)", self.model.path)
        return tiled_forward(self, image, weights, tile, stats=stats, stats_pixels=stats_pixels, context=context,
                             ramp=ramp, post=post, progress=progress)

    def batch(self, images: torch.Tensor, weights: torch.Tensor, pixel_blend: float = 1.0,
              preserve_colors: bool = False, tile: int | None = None, progress: bool = False,
              **tile_options: Any) -> torch.Tensor:
        """Stylize a batch (N,3,H,W) with per-image row weights (N,S) (see `controls`); `pixel_blend` < 1
        mixes the photo back in pixel by pixel; `tile=None` tiles only images above AUTO_TILE_PIXELS,
        0 never tiles. Returns float32 CPU (N,3,H,W) in [0,1]."""
        if not 0.0 <= pixel_blend <= 1.0:
            raise FaststError(f"pixel blend must be in [0, 1], got {pixel_blend}")
        images = images.float()
        if pixel_blend == 0.0:
            return images.cpu().clone()  # the content, exactly; no network run

        def post(content: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return finish(content, y, pixel_blend, preserve_colors)

        h, w = images.shape[-2:]
        if tile is None:
            tile = AUTO_TILE if (h * w > AUTO_TILE_PIXELS and self.backend == "torch") else 0
        if tile and max(h, w) > tile:
            outs = [self.tiled_forward(images[i:i + 1], weights[i:i + 1], tile, post=post, progress=progress,
                                       **tile_options) for i in range(images.shape[0])]
            return torch.cat(outs)
        return post(images, self.forward(images, weights)).clamp_(0, 1)


def finish(content: torch.Tensor, stylized: torch.Tensor, pixel_blend: float = 1.0,
           preserve_colors: bool = False) -> torch.Tensor:
    """A stylized image's last touches: the content's colours back (`preserve_colors`), then a pixel
    blend towards the content (`pixel_blend` < 1). Works on (3,H,W) and (N,3,H,W) tensors on the CPU."""
    content = content.float().cpu()
    if preserve_colors:
        stylized = _preserve_colors(content, stylized)
    if pixel_blend < 1.0:
        stylized = torch.lerp(content, stylized, pixel_blend)
    return stylized


def _to_tensor(image: ImageLike) -> tuple[torch.Tensor, str]:
    if isinstance(image, torch.Tensor):
        if image.dim() not in (3, 4) or image.shape[-3] != 3:
            raise ValueError(f"expected a (3,H,W) or (N,3,H,W) RGB tensor, got shape {tuple(image.shape)}")
        return (image.unsqueeze(0) if image.dim() == 3 else image), ("tensor3" if image.dim() == 3 else "tensor4")
    if isinstance(image, Image.Image):
        return pil_to_tensor(to_rgb(image)).unsqueeze(0), "pil"
    return load_image(image).unsqueeze(0), "tensor3"


def stylize(model: AnyModel | TransformerNet | str | os.PathLike | Stylizer, image: ImageLike,
            style: StyleSpec | torch.Tensor = None, *, strength: float | None = None, stroke: float | None = None,
            pixel_blend: float = 1.0, preserve_colors: bool = False,
            max_size: int | None = None, tile: int | None = None, precision: str = "auto",
            device: str | torch.device = "auto", progress: bool = False) -> Any:
    """Stylize an image with a trained model and return it in the form it came in.

    `image`: a (3,H,W) or (N,3,H,W) tensor in [0,1], a PIL image, or a file path (returns a (3,H,W)
    tensor). `style`: index, name, {name: weight} blend (normalised), weight list, or None (first
    style); a tensor is taken as raw row weights. `strength` in [0, 1.5] moves between the photo
    (0, the model's identity row) and the style (1), None: the model's default; `stroke` in [0, 1]
    between a style's smallest and largest brush strokes (fastst.controls). `pixel_blend` < 1 mixes
    the photo back pixel by pixel (a model without an identity row does so for strength too);
    `preserve_colors` keeps the content's
    chroma; `max_size` caps the long side; `tile` (px) bounds memory for big images (None: automatic
    above 4 MP, 0: never). `precision`: auto|fp32|bf16|fp16; `device`: auto|cpu|cuda|mps.
    """
    runner = model if isinstance(model, Stylizer) else Stylizer(model, device=device, precision=precision)
    x, kind = _to_tensor(image)
    if max_size is not None and max(x.shape[-2:]) > max_size:
        x = resize_long_side(x, int(max_size))
    if isinstance(style, torch.Tensor):
        if strength is not None or stroke is not None:
            raise FaststError("raw row weights carry their own strength and stroke: give a style name instead")
        weights, blend = runner.style_weights(style, batch=x.shape[0]), 1.0
    else:
        weights, blend = runner.controls(style, strength, stroke, batch=x.shape[0])
    y = runner.batch(x, weights, pixel_blend=blend * pixel_blend, preserve_colors=preserve_colors, tile=tile,
                     progress=progress)
    if kind == "pil":
        return tensor_to_pil(y[0])
    return y[0] if kind == "tensor3" else y
