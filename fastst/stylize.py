"""Stylizing images with a trained model: whole or in seam-free tiles that share instance-norm
statistics, with strength, colour preservation, precision and device choices, on the torch or the
ONNX Runtime backend. `fastst infer` and the video pipeline are thin layers over this module."""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import sys
import types
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Union

import numpy as np
import torch
from PIL import Image

from .colors import preserve_colors as _preserve_colors
from .errors import FaststError
from .hardware import cpu_has_fast_bf16, resolve_device
from .images import load_image, pil_to_tensor, resize_exact, resize_long_side, tensor_to_pil
from .modelfile import StyleInfo, StyleModel, load_model
from .transformer import TransformerNet

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Tiles share the instance-norm statistics of the whole image, recorded in one pass over at most
#: this many pixels: exact up to it, from a downscaled copy above it (see `tiled_forward`). A forward
#: pass costs ~1 GB per megapixel at its peak; this keeps the record pass near 0.6 GB.
STATS_PIXELS = 768 * 768
#: Without --tile, images above this many pixels are tiled automatically, in AUTO_TILE px tiles
#: (624 px with context: ~0.5 GB at the peak), so a 16-megapixel image stays under 2 GiB.
AUTO_TILE_PIXELS = 2048 * 2048
AUTO_TILE = 512
#: Context computed around each tile's core, px: the network's receptive radius is 54 px, so with
#: 48 px of context plus half the 16 px blend ramp a core pixel sees everything the whole image gives
#: it (measured: difference <= 4e-4 at 48 px from a tile edge, ~1e-6 at 56 px).
CONTEXT = 48
RAMP = 16
MIN_TILE = 32

StyleSpec = Union[int, str, dict, list, None]
ImageLike = Union[torch.Tensor, Image.Image, str, os.PathLike]


# --------------------------------------------------------------------------------------------- models

class OnnxModel:
    """An exported .onnx model run by ONNX Runtime: inputs `image` (N,3,H,W float32 in [0,1]) and
    `style` (N,S), output `stylized`; style names from the `styles` metadata property (JSON list)."""

    # The style lookup is the same as a .fst model's: borrow StyleModel's implementation.
    style_weights = StyleModel.style_weights
    style_index = StyleModel.style_index
    style_names = StyleModel.style_names

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FaststError("no such model file" if not self.path.exists() else "not a file", self.path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise FaststError("--backend onnx needs the 'onnxruntime' package") from None
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise FaststError("onnxruntime has no CUDA provider here (install onnxruntime-gpu) ; use --device cpu")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise FaststError(f"not a loadable ONNX model ({msg})", self.path) from None
        inputs = {i.name: i for i in self.session.get_inputs()}
        if set(inputs) != {"image", "style"} or [o.name for o in self.session.get_outputs()] != ["stylized"]:
            raise FaststError("not a fastst ONNX export (expected inputs image, style and output stylized)", self.path)
        meta = self.session.get_modelmeta().custom_metadata_map
        num_styles = inputs["style"].shape[1]
        try:
            names = json.loads(meta["styles"])
            assert isinstance(names, list) and all(isinstance(n, str) for n in names)
        except (KeyError, ValueError, AssertionError):
            if not isinstance(num_styles, int):
                raise FaststError("ONNX model has no 'styles' metadata and no fixed style count", self.path) from None
            names = [f"style{i}" for i in range(num_styles)]
        if isinstance(num_styles, int) and num_styles != len(names):
            raise FaststError(f"ONNX model metadata names {len(names)} styles but its input takes {num_styles}", self.path)
        self.styles = [StyleInfo(n) for n in names]
        batch = inputs["image"].shape[0]
        self.max_batch = batch if isinstance(batch, int) else None

    def __call__(self, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) float in [0,1], (N,S) weights -> (N,3,H,W) float32 CPU tensor."""
        step = self.max_batch or images.shape[0]
        outs = []
        for i in range(0, images.shape[0], step):
            feed = {"image": np.ascontiguousarray(images[i:i + step].float().cpu().numpy()),
                    "style": np.ascontiguousarray(weights[i:i + step].float().cpu().numpy())}
            outs.append(torch.from_numpy(self.session.run(["stylized"], feed)[0]))
        return torch.cat(outs)


AnyModel = Union[StyleModel, OnnxModel]


def onnx_for(model: StyleModel, device: str = "cpu", quiet: bool = False) -> OnnxModel:
    """`model` as an ONNX Runtime model, exported once and cached by a hash of its weights and style
    names in $FASTST_CACHE/onnx. On a 2-core CPU ONNX Runtime ran the network 1.5x (512²) to 1.7x
    (1024²) faster than eager PyTorch, which pays for the one-time export (~30 s) on folders and video."""
    import hashlib

    from export.common import fastst_version

    from .lossnet import cache_dir

    digest = hashlib.sha256()  # a new fastst or torch may export a different graph: both are in the key
    digest.update(json.dumps([model.style_names, torch.__version__, fastst_version()]).encode())
    for name, tensor in sorted(model.net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    path = cache_dir() / "onnx" / f"{digest.hexdigest()[:20]}.onnx"
    if not path.is_file():
        from export.onnx_export import export_onnx

        if not quiet:
            print(f"fastst: exporting the model for ONNX Runtime once (about 30 s; cached as {path})",
                  file=sys.stderr, flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, path)
    return OnnxModel(path, device=device)



#: `fastst infer --backend auto` runs .fst models on ONNX Runtime from this much input on a CPU:
#: the one-time export (~30 s, then cached) is repaid by the 1.5-1.7x speed-up after ~25 megapixels.
AUTO_ONNX_PIXELS = 50_000_000


def choose_backend(pixels: Sequence[int], device_type: str, precision: str, tile: int | None) -> str:
    """'onnx' or 'torch' for a run over inputs of these pixel counts (one per network input): ONNX
    Runtime where it is faster and equal (fp32 on a CPU, enough work, no image that needs tiling)."""
    import importlib.util

    if device_type != "cpu" or precision != "fp32" or tile is not None or not pixels:
        return "torch"
    if max(pixels) > AUTO_TILE_PIXELS or sum(pixels) < AUTO_ONNX_PIXELS:
        return "torch"
    if any(importlib.util.find_spec(m) is None for m in ("onnxruntime", "onnxscript")):
        return "torch"
    return "onnx"


def open_model(path: str | os.PathLike | None = None, device: str = "cpu") -> AnyModel:
    """A .fst model file (None: the bundled pretrained model) or an exported .onnx file."""
    if path is not None and Path(path).suffix.lower() == ".onnx":
        return OnnxModel(path, device=device)
    if path is None:
        try:
            return load_model(None)
        except ImportError:
            raise FaststError("no model given and no pretrained model is installed; pass a .fst model file") from None
    return load_model(path)


def _as_model(model: AnyModel | TransformerNet | str | os.PathLike) -> AnyModel:
    if isinstance(model, (StyleModel, OnnxModel)):
        return model
    if isinstance(model, TransformerNet):
        return StyleModel(net=model.eval(), styles=[StyleInfo(f"style{i}") for i in range(model.num_styles)])
    if isinstance(model, (str, os.PathLike)):
        return open_model(model)
    raise TypeError(f"expected a StyleModel, OnnxModel, TransformerNet or a model path, got {type(model).__name__}")


# ----------------------------------------------------------------------------------------- precision

def default_precision(device: torch.device) -> str:
    """bf16 on CPUs that compute it in hardware (AMX / AVX512-BF16: ~2x faster, visually equal),
    fp16 on CUDA, else fp32 (on AVX2-only CPUs bf16 is emulated: ~50x slower, measured)."""
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if device.type == "cuda":
        return "fp16"
    return "fp32"


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """fp16 runs under autocast; fp32 and bf16 need none (bf16 runs a bf16 copy of the network)."""
    if precision != "fp16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16)


def _network_dtype(precision: str) -> torch.dtype:
    """bf16 keeps fp32's range, so the whole network runs in it: no per-layer casts, and the
    norms and pads move half the bytes (a 512² frame 12 % faster than under autocast, measured).
    fp16 would overflow without autocast's fp32 islands."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


# ---------------------------------------------------------------------------------------------- tiles

def _ceil4(n: int) -> int:
    return (n + 3) // 4 * 4


def tile_spans(length: int, tile: int, extend: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Cut [0, length) into cores of `tile` px (starts on multiples of 4, so the network's stride-2
    grid lines up with the whole image's) and give each core its input span: the core plus
    `extend` px of context on each side, within the image. Returns [((core0, core1), (in0, in1))]."""
    tile = max(4, tile // 4 * 4)
    n = max(1, math.ceil(length / tile))
    cores = [(i * tile, min(length, (i + 1) * tile)) for i in range(n)]
    if len(cores) > 1 and cores[-1][1] - cores[-1][0] < tile // 4:  # fold a sliver into its neighbour
        cores[-2:] = [(cores[-2][0], length)]
    return [((c0, c1), (max(0, c0 - extend), min(length, c1 + extend))) for c0, c1 in cores]


def blend_weights(length: int, spans: Sequence[tuple[tuple[int, int], tuple[int, int]]], ramp: int) -> list[torch.Tensor]:
    """Per-tile 1-D weights over each input span: 1 on the core, raised-cosine ramps `ramp` px wide
    centred on core boundaries between tiles, 0 on the rest of the context; they sum to 1."""
    raw = []
    for (c0, c1), (s, e) in spans:
        p = torch.arange(s, e, dtype=torch.float64) + 0.5
        w = torch.ones(e - s, dtype=torch.float64)
        if c0 > 0:
            t = ((p - (c0 - ramp / 2)) / max(ramp, 1e-9)).clamp(0, 1)
            w *= 0.5 - 0.5 * torch.cos(math.pi * t)
        if c1 < length:
            t = ((p - (c1 - ramp / 2)) / max(ramp, 1e-9)).clamp(0, 1)
            w *= 0.5 + 0.5 * torch.cos(math.pi * t)
        raw.append(w)
    total = torch.zeros(length, dtype=torch.float64)
    for (_, (s, e)), w in zip(spans, raw):
        total[s:e] += w
    return [(w / total[s:e]).float() for (_, (s, e)), w in zip(spans, raw)]


@contextlib.contextmanager
def shared_statistics(net: TransformerNet) -> Iterator[Callable[[str], None]]:
    """Switch every conditional instance norm between 'record' and 'use'; always restored after."""
    norms = net.norms()

    def mode(m: str) -> None:
        for n in norms:
            n.shared_stats = m

    try:
        yield mode
    finally:
        for n in norms:
            n.shared_stats = None
            n.stats = None


class _StopForward(Exception):
    """Raised by the statistics hook to skip the layers after the one being measured."""


class _StatsAccumulator:
    """A forward pre-hook on one norm that sums its input over the current tile's core (at that
    layer's resolution) and then stops the forward: one tiled pass measures that layer's exact
    whole-image statistics at the cost of the layers before it."""

    def __init__(self, norm: Any) -> None:
        self.core: tuple[int, int, int, int, int, int] | None = None  # y0, y1, x0, x1, padded h, w
        self.s1: torch.Tensor | None = None
        self.s2: torch.Tensor | None = None
        self.n = 0
        self.handle = norm.register_forward_pre_hook(self._hook)

    def _hook(self, module: Any, args: tuple[torch.Tensor, ...]) -> None:
        assert self.core is not None
        x = args[0]
        y0, y1, x0, x1, ph, pw = self.core
        fy, fx = ph // x.shape[-2], pw // x.shape[-1]
        part = x[..., y0 // fy:y1 // fy, x0 // fx:x1 // fx].double()
        s1, s2 = part.sum(dim=(2, 3), keepdim=True), part.square().sum(dim=(2, 3), keepdim=True)
        self.s1 = s1 if self.s1 is None else self.s1 + s1
        self.s2 = s2 if self.s2 is None else self.s2 + s2
        self.n += part.shape[-2] * part.shape[-1]
        raise _StopForward

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.s1 is not None and self.s2 is not None
        mean = self.s1 / self.n
        return mean.float(), (self.s2 / self.n - mean.square()).clamp_min(0).float()

    def close(self) -> None:
        self.handle.remove()


# ------------------------------------------------------------------------------------------ stylizer

class Stylizer:
    """A model bound to a device and precision; call `.batch()` on (N,3,H,W) tensors or use `stylize()`."""

    def __init__(self, model: AnyModel | TransformerNet | str | os.PathLike, device: str | torch.device = "auto",
                 precision: str = "auto", channels_last: bool | None = None) -> None:
        self.model = _as_model(model)
        if precision not in PRECISIONS:
            raise FaststError(f"unknown precision '{precision}' (use {', '.join(PRECISIONS)})")
        if isinstance(self.model, OnnxModel):
            self.device = torch.device("cpu")
            if precision not in ("auto", "fp32"):
                raise FaststError(f"--precision {precision} applies to the torch backend; an ONNX model runs in the "
                                  "precision it was exported in", self.model.path)
            self.precision = "fp32"
            self.channels_last = False
            self.dtype = torch.float32
            return
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.precision = default_precision(self.device) if precision == "auto" else precision
        # Channels-last is slower on CPU here (reflection padding reorders memory); on CUDA with
        # half precision it feeds the tensor cores.
        self.channels_last = (self.device.type == "cuda" and self.precision != "fp32") if channels_last is None else channels_last
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.dtype = _network_dtype(self.precision)
        net = self.model.net if self.dtype == torch.float32 else copy.deepcopy(self.model.net)  # the model stays fp32
        self.net = net.eval().requires_grad_(False).to(self.device, self.dtype, memory_format=fmt)

    @property
    def backend(self) -> str:
        return "onnx" if isinstance(self.model, OnnxModel) else "torch"

    @property
    def style_names(self) -> list[str]:
        return self.model.style_names

    def style_weights(self, style: StyleSpec = None, batch: int = 1) -> torch.Tensor:
        """(batch, S) weights for a style index, name, {name: weight} blend or weight list."""
        if isinstance(style, torch.Tensor):
            w = style.float().reshape(-1, len(self.style_names))
            return w.expand(batch, -1).contiguous() if w.shape[0] == 1 else w
        return self.model.style_weights(style, batch)

    def forward(self, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Run the network once: (N,3,H,W) in [0,1] -> float32 CPU (N,3,H,W), no tiling."""
        if isinstance(self.model, OnnxModel):
            return self.model(images, weights)
        x = images.to(self.device, self.dtype, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), _autocast(self.device, self.precision):
            y = self.net(x, weights.to(self.device))
        y = y.float().contiguous().cpu()
        return y.clone() if y.is_inference() else y  # a normal tensor: callers may update it in place

    def tiled_forward(self, image: torch.Tensor, weights: torch.Tensor, tile: int, stats: str = "auto",
                      stats_pixels: int = STATS_PIXELS, context: int = CONTEXT, ramp: int = RAMP,
                      post: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                      progress: bool = False) -> torch.Tensor:
        """Stylize one image (1,3,H,W) in tiles of `tile` px (each computed with `context` + `ramp`/2
        px of context on every side and blended over `ramp` px); memory is bounded by the tile.

        Instance norm makes every pixel depend on whole-image statistics, so tiles must share them.
        stats="auto": record every layer's statistics in one pass over the image, downscaled to
        `stats_pixels` if larger: exact up to that size, an approximation above it (no seams, but a 2x
        downscale moves the output by ~0.05 on average). stats="exact": measure each of the 16
        layers' statistics over full-resolution tiles in turn, stopping each pass at that layer:
        equal to the whole-image result at any size, for ~8x the time. `post(content, stylized)`
        (strength, colours) runs per tile.
        """
        if isinstance(self.model, OnnxModel):
            raise FaststError("tiling needs the torch backend (an ONNX graph normalises each tile on its own)",
                              self.model.path)
        if stats not in ("auto", "exact"):
            raise ValueError(f"stats must be 'auto' or 'exact', got {stats!r}")
        _, _, h, w = image.shape
        tile = max(MIN_TILE, int(tile) // 4 * 4)
        context, ramp = int(context) // 4 * 4, int(ramp) // 4 * 4
        extend = context + ramp // 2
        ys, xs = tile_spans(h, tile, extend), tile_spans(w, tile, extend)
        wy, wx = blend_weights(h, ys, ramp), blend_weights(w, xs, ramp)
        norms = self.net.norms()
        exact = stats == "exact" and h * w > stats_pixels
        tiles = [(ty, tx) for ty in zip(ys, wy) for tx in zip(xs, wx)]
        bar = _progress((len(norms) + 1 if exact else 1) * len(tiles), "tiles",
                        enabled=progress and len(tiles) > 1)
        with shared_statistics(self.net) as mode:
            try:
                if exact:
                    mode("use")
                    for norm in norms:
                        acc = _StatsAccumulator(norm)
                        try:
                            for (((cy0, cy1), (y0, y1)), _), (((cx0, cx1), (x0, x1)), _) in tiles:
                                ph, pw = _ceil4(y1 - y0), _ceil4(x1 - x0)  # the last core takes the padding
                                acc.core = (cy0 - y0, ph if cy1 == h else cy1 - y0,
                                            cx0 - x0, pw if cx1 == w else cx1 - x0, ph, pw)
                                with contextlib.suppress(_StopForward):
                                    self.forward(image[..., y0:y1, x0:x1], weights)
                                bar.update(1)
                        finally:
                            acc.close()
                        mean, var = acc.stats()
                        norm.stats = (mean.to(self.device), var.to(self.device))
                else:
                    mode("record")
                    if h * w <= stats_pixels:
                        small = image
                    else:
                        f = math.sqrt(stats_pixels / (h * w))
                        small = resize_exact(image, max(16, round(h * f)), max(16, round(w * f)))
                    with torch.inference_mode(), _autocast(self.device, self.precision):
                        self.net(small.to(self.device, self.dtype), weights.to(self.device))
                    del small
                    mode("use")
                out = torch.zeros(1, 3, h, w)  # allocated after the record pass: lower peak memory
                for ((_, (y0, y1)), wyi), ((_, (x0, x1)), wxi) in tiles:
                    content = image[..., y0:y1, x0:x1]
                    y = self.forward(content, weights)
                    if post is not None:
                        y = post(content, y)
                    out[..., y0:y1, x0:x1].addcmul_(y, wyi[:, None] * wxi[None, :])
                    bar.update(1)
            finally:
                bar.close()
        return out.clamp_(0, 1)

    def batch(self, images: torch.Tensor, weights: torch.Tensor, strength: float = 1.0,
              preserve_colors: bool = False, tile: int | None = None, progress: bool = False,
              **tile_options: Any) -> torch.Tensor:
        """Stylize a batch (N,3,H,W) with per-image style weights (N,S); `tile=None` tiles only
        images above AUTO_TILE_PIXELS, 0 never tiles. Returns float32 CPU (N,3,H,W) in [0,1]."""
        if not 0.0 <= strength <= 1.0:
            raise FaststError(f"strength must be in [0, 1], got {strength}")
        images = images.float()
        if strength == 0.0:
            return images.cpu().clone()  # the content, exactly; no network run

        def post(content: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return finish(content, y, strength, preserve_colors)

        h, w = images.shape[-2:]
        if tile is None:
            tile = AUTO_TILE if (h * w > AUTO_TILE_PIXELS and self.backend == "torch") else 0
        if tile and max(h, w) > tile:
            outs = [self.tiled_forward(images[i:i + 1], weights[i:i + 1], tile, post=post, progress=progress,
                                       **tile_options) for i in range(images.shape[0])]
            return torch.cat(outs)
        return post(images, self.forward(images, weights)).clamp_(0, 1)


def finish(content: torch.Tensor, stylized: torch.Tensor, strength: float = 1.0,
           preserve_colors: bool = False) -> torch.Tensor:
    """A stylized image's last touches: the content's colours back (`preserve_colors`), then a blend
    towards the content (`strength` < 1). Works on (3,H,W) and (N,3,H,W) tensors on the CPU."""
    content = content.float().cpu()
    if preserve_colors:
        stylized = _preserve_colors(content, stylized)
    if strength < 1.0:
        stylized = torch.lerp(content, stylized, strength)
    return stylized


def _progress(total: int | None, unit: str, enabled: bool = True, desc: str | None = None) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit=f" {unit}", desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------ public API

def _to_tensor(image: ImageLike) -> tuple[torch.Tensor, str]:
    if isinstance(image, torch.Tensor):
        if image.dim() not in (3, 4) or image.shape[-3] != 3:
            raise ValueError(f"expected a (3,H,W) or (N,3,H,W) RGB tensor, got shape {tuple(image.shape)}")
        return (image.unsqueeze(0) if image.dim() == 3 else image), ("tensor3" if image.dim() == 3 else "tensor4")
    if isinstance(image, Image.Image):
        from .images import _to_rgb
        return pil_to_tensor(_to_rgb(image)).unsqueeze(0), "pil"
    return load_image(image).unsqueeze(0), "tensor3"


def stylize(model: AnyModel | TransformerNet | str | os.PathLike | Stylizer, image: ImageLike,
            style: StyleSpec | torch.Tensor = None, *, strength: float = 1.0, preserve_colors: bool = False,
            max_size: int | None = None, tile: int | None = None, precision: str = "auto",
            device: str | torch.device = "auto", progress: bool = False) -> Any:
    """Stylize an image with a trained model and return it in the form it came in.

    `image`: a (3,H,W) or (N,3,H,W) tensor in [0,1], a PIL image, or a file path (returns a (3,H,W)
    tensor). `style`: index, name, {name: weight} blend (normalised), weight list, or None (first
    style). `strength` in [0,1] blends with the content; `preserve_colors` keeps the content's
    chroma; `max_size` caps the long side; `tile` (px) bounds memory for big images (None: automatic
    above 4 MP, 0: never). `precision`: auto|fp32|bf16|fp16; `device`: auto|cpu|cuda|mps.
    """
    runner = model if isinstance(model, Stylizer) else Stylizer(model, device=device, precision=precision)
    x, kind = _to_tensor(image)
    if max_size is not None and max(x.shape[-2:]) > max_size:
        x = resize_long_side(x, int(max_size))
    weights = runner.style_weights(style, batch=x.shape[0])
    y = runner.batch(x, weights, strength=strength, preserve_colors=preserve_colors, tile=tile, progress=progress)
    if kind == "pil":
        return tensor_to_pil(y[0])
    return y[0] if kind == "tensor3" else y


class _CallableModule(types.ModuleType):
    """`fastst.stylize` names both this module and its main function; once the submodule is imported
    the package attribute is the module, so the module forwards calls to `stylize()`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return stylize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
