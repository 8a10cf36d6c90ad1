"""Warping along flow, the occlusion mask, the warping error and flow-guided blending, on generated
sequences whose flow is known exactly (the metric's maths needs no OpenCV; the blender does)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import synthetic_image
from fastst.errors import FaststError
from fastst.temporal import (
    TemporalBlender,
    blend,
    flow_warp,
    mean_warping_error,
    occlusion_mask,
    require_cv2,
    warping_error,
)


def _frame(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    return synthetic_image(h, w, seed).permute(1, 2, 0).numpy().astype(np.float32)


def _constant(h: int, w: int, dx: float, dy: float = 0.0) -> np.ndarray:
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def _panning(count: int, h: int = 40, w: int = 56) -> list[np.ndarray]:
    """A camera panning left over a wider picture: content moves 1 px right per frame."""
    wide = _frame(h, w + count, seed=3)
    return [wide[:, count - t:count - t + w] for t in range(count)]


def test_zero_flow_returns_the_image_exactly_and_whole_shifts_move_it():
    img = _frame()
    same, inside = flow_warp(img, _constant(40, 56, 0))
    assert np.array_equal(same, img) and inside.all()
    moved, inside = flow_warp(img, _constant(40, 56, 2, -1))
    np.testing.assert_allclose(moved[1:, :-2], img[:-1, 2:], atol=1e-6)
    assert not inside[:, -2:].any() and not inside[0].any() and inside[1:, :-2].all()


def test_half_pixel_shift_of_a_ramp_is_exact():
    ramp = np.tile(np.linspace(0, 1, 20, dtype=np.float32), (8, 1))[..., None]
    moved, _ = flow_warp(ramp, _constant(8, 20, 0.5))
    np.testing.assert_allclose(moved[:, :-1, 0], ramp[:, :-1, 0] + 0.5 / 19, atol=1e-6)


def test_occlusion_mask_keeps_consistent_flow_and_drops_the_rest():
    h, w = 30, 40
    visible = occlusion_mask(_constant(h, w, -1), _constant(h, w, 1))
    assert visible[:, 1:].all() and not visible[:, 0].any()  # column 0 came from outside the frame
    assert not occlusion_mask(_constant(h, w, -3), _constant(h, w, -3))[:, 5:-5].any()  # there and not back
    edge = _constant(h, w, 0)
    edge[:, w // 2:, 0] = -4  # a motion boundary down the middle
    visible = occlusion_mask(edge, -edge)
    assert not visible[:, w // 2 - 1:w // 2 + 1].any() and visible[:, :w // 2 - 2].all()


def test_warping_error_is_zero_on_a_static_video():
    frames = [_frame()] * 5
    still = (_constant(40, 56, 0), np.ones((40, 56), bool))
    assert mean_warping_error(frames, [still] * 4) == 0.0


def test_warping_error_has_the_known_value_on_a_shifted_sequence():
    frames = _panning(6)
    pairs = [(_constant(40, 56, -1), occlusion_mask(_constant(40, 56, -1), _constant(40, 56, 1)))] * 5
    assert mean_warping_error(frames, pairs) < 1e-12  # the content only moved: no flicker
    flicker = [f + (0.05 if t % 2 else -0.05) for t, f in enumerate(frames)]  # brightness alternating by 0.1
    assert mean_warping_error(flicker, pairs) == pytest.approx(0.01, rel=1e-5)
    # without the flow the plain frame difference counts the motion as flicker
    no_flow = [(_constant(40, 56, 0), np.ones((40, 56), bool))] * 5
    assert mean_warping_error(frames, no_flow) > 1e-3
    assert warping_error(frames[0], frames[1], *pairs[0]) < 1e-12
    with pytest.raises(ValueError):
        mean_warping_error(frames[:1], [])


def test_blend_pulls_only_visible_pixels():
    current, previous = np.zeros((4, 4, 3), np.float32), np.ones((4, 4, 3), np.float32)
    visible = np.zeros((4, 4), bool)
    visible[:2] = True
    out = blend(current, previous, visible, 0.25)
    assert np.allclose(out[:2], 0.25) and np.all(out[2:] == 0)
    assert np.array_equal(blend(current, previous, visible, 0.0), current)
    with pytest.raises(ValueError):
        blend(current, previous, visible, 1.5)


def test_blender_on_a_static_video_returns_the_frames_themselves():
    pytest.importorskip("cv2")
    rgb = (_frame() * 255).astype(np.uint8)
    out = _frame(seed=7)
    blender = TemporalBlender(strength=0.8)
    for _ in range(4):
        assert np.array_equal(blender.step(rgb, out), out)


def test_blender_smooths_alternating_flicker_on_a_pan():
    pytest.importorskip("cv2")
    frames = _panning(8)
    rgb = [(f * 255).round().astype(np.uint8) for f in frames]
    flicker = [np.clip(f + (0.05 if t % 2 else -0.05), 0, 1) for t, f in enumerate(frames)]
    blender = TemporalBlender(strength=0.5)
    smooth = [blender.step(r, o) for r, o in zip(rgb, flicker)]
    inner = (slice(4, -4), slice(4, -4))
    raw_jump = np.abs(flicker[-1][inner][:, 1:] - flicker[-2][inner][:, :-1]).mean()
    smooth_jump = np.abs(smooth[-1][inner][:, 1:] - smooth[-2][inner][:, :-1]).mean()
    assert smooth_jump < 0.6 * raw_jump


def test_missing_opencv_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(FaststError, match="opencv-python-headless") as e:
        require_cv2()
    assert "\n" not in str(e.value)
    with pytest.raises(FaststError):
        TemporalBlender(0.5)


def test_opencv_warp_matches_the_numpy_reference():
    pytest.importorskip("cv2")
    from fastst.temporal import DisFlow

    img = _frame()
    rng = np.random.default_rng(0)
    flow = rng.uniform(-3, 3, (40, 56, 2)).astype(np.float32)
    ref, ref_inside = flow_warp(img, flow)
    fast, fast_inside = DisFlow("ultrafast").warp(img, flow)
    assert np.array_equal(ref_inside, fast_inside)
    np.testing.assert_allclose(fast, ref, atol=2e-2)  # OpenCV interpolates at 1/32 px
    assert np.abs(fast - ref).mean() < 2e-3
