"""Seam-free tiled inference: an image cut into tiles with context around each core, blended over
raised-cosine ramps, every tile normalised with the whole image's instance-norm statistics (Ulyanov
et al.'s instance norm makes each pixel depend on the whole image, so tiles must share them)."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..images import resize_exact
from ..progress import progress_bar
from ..transformer import TransformerNet

if TYPE_CHECKING:
    from .stylizer import Stylizer

#: Tiles share the instance-norm statistics of the whole image, recorded in one pass over at most
#: this many pixels: exact up to it, from a downscaled copy above it (see `tiled_forward`). A forward
#: pass costs ~1 GB per megapixel at its peak; this keeps the record pass near 0.6 GB.
STATS_PIXELS = 768 * 768
#: Without an explicit tile size, images above this many pixels are tiled automatically, in
#: AUTO_TILE px tiles (624 px with context: ~0.5 GB at the peak), so a 16-megapixel image stays under 2 GiB.
AUTO_TILE_PIXELS = 2048 * 2048
AUTO_TILE = 512
#: Context computed around each tile's core, px: the network's receptive radius is 54 px, so with
#: 48 px of context plus half the 16 px blend ramp a core pixel sees everything the whole image gives
#: it (measured: difference <= 4e-4 at 48 px from a tile edge, ~1e-6 at 56 px).
CONTEXT = 48
RAMP = 16
MIN_TILE = 32

Spans = Sequence[tuple[tuple[int, int], tuple[int, int]]]


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


def blend_weights(length: int, spans: Spans, ramp: int) -> list[torch.Tensor]:
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


Tiles = list[tuple[tuple[tuple[tuple[int, int], tuple[int, int]], torch.Tensor], ...]]


def _measure_exact(runner: Stylizer, image: torch.Tensor, weights: torch.Tensor, tiles: Tiles, bar: Any) -> None:
    """Each norm's whole-image statistics, layer by layer, from full-resolution tiles (stats='exact')."""
    _, _, h, w = image.shape
    for norm in runner.net.norms():
        acc = _StatsAccumulator(norm)
        try:
            for (((cy0, cy1), (y0, y1)), _), (((cx0, cx1), (x0, x1)), _) in tiles:
                ph, pw = _ceil4(y1 - y0), _ceil4(x1 - x0)  # the last core takes the padding
                acc.core = (cy0 - y0, ph if cy1 == h else cy1 - y0, cx0 - x0, pw if cx1 == w else cx1 - x0, ph, pw)
                with contextlib.suppress(_StopForward):
                    runner.forward(image[..., y0:y1, x0:x1], weights)
                bar.update(1)
        finally:
            acc.close()
        mean, var = acc.stats()
        norm.stats = (mean.to(runner.device), var.to(runner.device))


def _record(runner: Stylizer, image: torch.Tensor, weights: torch.Tensor, stats_pixels: int) -> None:
    """Every norm's statistics from one pass over the image, downscaled to `stats_pixels` if larger."""
    _, _, h, w = image.shape
    small = image
    if h * w > stats_pixels:
        f = math.sqrt(stats_pixels / (h * w))
        small = resize_exact(image, max(16, round(h * f)), max(16, round(w * f)))
    runner.run_network(small, weights)


def tiled_forward(runner: Stylizer, image: torch.Tensor, weights: torch.Tensor, tile: int, stats: str = "auto",
                  stats_pixels: int = STATS_PIXELS, context: int = CONTEXT, ramp: int = RAMP,
                  post: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                  progress: bool = False) -> torch.Tensor:
    """Stylize one image (1,3,H,W) with `runner`'s torch network in tiles of `tile` px (each computed
    with `context` + `ramp`/2 px of context on every side and blended over `ramp` px); memory is
    bounded by the tile. stats="auto": record every layer's statistics in one pass over the image,
    downscaled to `stats_pixels` if larger: exact up to that size, an approximation above it (no
    seams, but a 2x downscale moves the output by ~0.05 on average). stats="exact": measure each of
    the 16 layers' statistics over full-resolution tiles in turn: equal to the whole-image result at
    any size, for ~8x the time. `post(content, stylized)` (strength, colours) runs per tile."""
    if stats not in ("auto", "exact"):
        raise ValueError(f"stats must be 'auto' or 'exact', got {stats!r}")
    _, _, h, w = image.shape
    tile = max(MIN_TILE, int(tile) // 4 * 4)
    context, ramp = int(context) // 4 * 4, int(ramp) // 4 * 4
    ys, xs = tile_spans(h, tile, context + ramp // 2), tile_spans(w, tile, context + ramp // 2)
    wy, wx = blend_weights(h, ys, ramp), blend_weights(w, xs, ramp)
    tiles: Tiles = [(ty, tx) for ty in zip(ys, wy) for tx in zip(xs, wx)]
    exact = stats == "exact" and h * w > stats_pixels
    bar = progress_bar((len(runner.net.norms()) + 1 if exact else 1) * len(tiles), "tiles",
                       enabled=progress and len(tiles) > 1)
    with shared_statistics(runner.net) as mode:
        try:
            if exact:
                mode("use")
                _measure_exact(runner, image, weights, tiles, bar)
            else:
                mode("record")
                _record(runner, image, weights, stats_pixels)
                mode("use")
            out = torch.zeros(1, 3, h, w)  # allocated after the record pass: lower peak memory
            for ((_, (y0, y1)), wy), ((_, (x0, x1)), wx) in tiles:
                content = image[..., y0:y1, x0:x1]
                y = runner.forward(content, weights)
                if post is not None:
                    y = post(content, y)
                out[..., y0:y1, x0:x1].addcmul_(y, wy[:, None] * wx[None, :])
                bar.update(1)
        finally:
            bar.close()
    return out.clamp_(0, 1)
