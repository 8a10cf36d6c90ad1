"""Temporal consistency of stylized video: warping frames along optical flow, the forward-backward
occlusion mask, the warping error that measures flicker (Lai et al., "Learning Blind Video
Temporal Consistency", ECCV 2018), and flow-guided blending of each output with the previous one.

The maths is NumPy on (H, W, C) float arrays so that it runs and is tested without OpenCV; only
`DisFlow` (OpenCV's DIS optical flow, Kroeger et al. ECCV 2016) needs `cv2`, imported when used.
A flow field maps each pixel p of frame a to p + flow(p) in frame b, in pixels, (x, y) order.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import FaststError

#: OpenCV's DIS presets by name; "medium" is what the benchmark uses, "fast" what blending uses.
DIS_PRESETS = ("ultrafast", "fast", "medium")


def flow_warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """image(p + flow(p)) by bilinear interpolation, for an (H, W, C) image and an (H, W, 2) flow,
    and the (H, W) mask of the points p + flow(p) inside the frame. Samples outside repeat the edge.
    A zero flow returns the image exactly (the interpolation weights are then 1 and 0)."""
    h, w = image.shape[:2]
    if flow.shape != (h, w, 2):
        raise ValueError(f"flow of shape {flow.shape} does not fit an image of {h}x{w}")
    x = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    y = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2 if w > 1 else 0)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2 if h > 1 else 0)
    fx, fy = (x - x0).astype(np.float32)[..., None], (y - y0).astype(np.float32)[..., None]
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    img = image.astype(np.float32, copy=False)
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy, inside


Warp = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def occlusion_mask(backward: np.ndarray, forward: np.ndarray, warp: Warp = flow_warp) -> np.ndarray:
    """The (H, W) mask of the pixels of frame t that are visible in frame t-1, given the flows
    `backward` (t -> t-1) and `forward` (t-1 -> t). Ruder et al. ("Artistic style transfer for
    videos", GCPR 2016), as used by Lai et al.'s warping error: a pixel is occluded when following
    the backward flow and then the forward flow does not come back,
    |b + f̃|² > 0.01 (|b|² + |f̃|²) + 0.5 with f̃ = forward warped by backward, when it lies on a
    motion boundary, |∇b_x|² + |∇b_y|² > 0.01 |b|² + 0.002, or when the flow leaves the frame.
    `warp` computes what `flow_warp` does (`DisFlow.warp`: the same with OpenCV, many times faster)."""
    f_w, inside = warp(forward, backward)
    b2 = (backward ** 2).sum(-1)
    consistent = ((backward + f_w) ** 2).sum(-1) <= 0.01 * (b2 + (f_w ** 2).sum(-1)) + 0.5
    grads = [np.gradient(backward[..., c], axis=a) for c in range(2) for a in (0, 1)]
    smooth = sum(g ** 2 for g in grads) <= 0.01 * b2 + 0.002
    return consistent & smooth & inside


def warping_error(previous: np.ndarray, current: np.ndarray, backward: np.ndarray, visible: np.ndarray) -> float:
    """Lai et al.'s E_warp for one pair: the mean over the `visible` pixels (`occlusion_mask`) and the
    channels of (current(p) − previous(p + backward(p)))², frames (H, W, C) in [0, 1]; 0 when nothing
    is visible. (Lai et al.'s code sums the channels, which gives 3 × this for RGB.)"""
    n = int(visible.sum())
    if n == 0:
        return 0.0
    warped, _ = flow_warp(previous, backward)
    diff = current.astype(np.float32, copy=False)[visible] - warped[visible]
    return float((diff ** 2).mean())


def mean_warping_error(frames: Iterable[np.ndarray], flows: Iterable[tuple[np.ndarray, np.ndarray]]) -> float:
    """E_warp of a sequence: the mean over consecutive pairs (t-1, t) of `warping_error`, with
    `flows` giving (backward flow, visible mask) for each pair in order."""
    errors, previous = [], None
    flow_iter = iter(flows)
    for frame in frames:
        if previous is not None:
            backward, visible = next(flow_iter)
            errors.append(warping_error(previous, frame, backward, visible))
        previous = frame
    if not errors:
        raise ValueError("the warping error needs at least two frames")
    return float(np.mean(errors))


def require_cv2() -> Any:
    """OpenCV's module, or a one-line error saying how to install it."""
    try:
        import cv2
    except ImportError:
        raise FaststError("optical flow needs OpenCV, which is not installed: pip install 'fastst[video]' "
                          "(or opencv-python-headless)") from None
    return cv2


class DisFlow:
    """Dense optical flow between two RGB uint8 frames by OpenCV's DIS at a preset ("ultrafast",
    "fast", "medium"); `__call__(a, b)` gives the (H, W, 2) float32 flow from a to b."""

    def __init__(self, preset: str = "medium") -> None:
        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}: choose one of {', '.join(DIS_PRESETS)}")
        self.cv2 = require_cv2()
        code = getattr(self.cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}")
        self.dis = self.cv2.DISOpticalFlow_create(code)

    def gray(self, rgb: np.ndarray) -> np.ndarray:
        return self.cv2.cvtColor(np.ascontiguousarray(rgb), self.cv2.COLOR_RGB2GRAY)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ga = a if a.ndim == 2 else self.gray(a)
        gb = b if b.ndim == 2 else self.gray(b)
        return self.dis.calc(ga, gb, None)

    def warp(self, image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`flow_warp` by OpenCV's remap (bilinear at 1/32 px, edge repeated): ~100x faster than NumPy's gathers."""
        h, w = flow.shape[:2]
        x = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
        y = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
        inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
        warped = self.cv2.remap(np.ascontiguousarray(image, dtype=np.float32), x, y, self.cv2.INTER_LINEAR,
                                borderMode=self.cv2.BORDER_REPLICATE)
        return warped.reshape(image.shape), inside


def blend(current: np.ndarray, previous_warped: np.ndarray, visible: np.ndarray, strength: float) -> np.ndarray:
    """current + strength · visible · (previous_warped − current): each visible pixel pulled towards
    where the previous output had it; occluded pixels (new content) keep the current output."""
    if not 0 <= strength <= 1:
        raise ValueError(f"blend strength must be in [0, 1], got {strength}")
    alpha = (strength * visible.astype(np.float32))[..., None]
    return current + alpha * (previous_warped - current)


@dataclass
class TemporalBlender:
    """Flow-guided smoothing of a stream of stylized frames: each output is blended with the previous
    *blended* output warped by the backward flow of the input frames (a running average along motion
    paths, cut where the occlusion mask says the content is new). `step(rgb, out)` takes the input
    frame (H, W, 3) uint8 and its stylized output (H, W, 3) float in [0, 1] and returns the blended
    output; `reset()` starts over (after a cut or a lost frame)."""

    strength: float = 0.5
    preset: str = "fast"
    _flow: DisFlow | None = field(default=None, repr=False)
    _previous: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.strength <= 1:
            raise ValueError(f"temporal strength must be in [0, 1], got {self.strength}")
        if self._flow is None:
            self._flow = DisFlow(self.preset)

    def reset(self) -> None:
        """Forget the previous frame: the next one comes out as the network painted it (after a gap)."""
        self._previous = None

    def step(self, rgb: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The blended output for input frame `rgb` and the network's output `out` (H, W, 3 arrays),
        remembered as the previous frame for the next call."""
        gray = self._flow.gray(rgb)
        if self._previous is None or self._previous[0].shape != gray.shape or self.strength == 0:
            result = out.astype(np.float32, copy=False)
        else:
            prev_gray, prev_out = self._previous
            flow = self._flow
            backward, forward = flow(gray, prev_gray), flow(prev_gray, gray)
            warped, _ = flow.warp(prev_out, backward)
            visible = occlusion_mask(backward, forward, flow.warp)
            result = blend(out.astype(np.float32, copy=False), warped, visible, self.strength)
        self._previous = (gray, result)
        return result
