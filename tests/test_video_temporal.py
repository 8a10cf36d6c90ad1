"""`fastst infer VIDEO --temporal`: a still scene comes out exactly as without it, a damaged file still
finishes, flicker of a moving scene goes down, and a missing OpenCV or a misplaced flag is one line."""
from __future__ import annotations

import sys

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from conftest import write_video  # noqa: E402
from test_video import describe, infer, make_video, model_path  # noqa: E402,F401 - model_path is a fixture


def frames_of(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def still_video(path, frames: int = 6, width: int = 64, height: int = 48):
    """The same picture in every frame, losslessly coded (FFV1), so that every decoded frame is equal."""
    rng = np.random.default_rng(1)
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = np.arange(width)[None, :] * 4
    img[..., 1] = np.arange(height)[:, None] * 5
    img[..., 2] = rng.integers(0, 255, (height, width))
    return write_video(path, [img] * frames, codec="ffv1")


def test_a_still_scene_comes_out_as_without_temporal(capsys, tmp_path, model_path):  # noqa: F811
    src = still_video(tmp_path / "still.mkv")
    # one frame per network call, so every frame's output comes from a call of the same shape: the blend
    # of equal pictures must then change nothing, to the bit, through the same encoder
    one = ("--batch-size", "1")
    assert infer(capsys, model_path, src, "-o", tmp_path / "plain.mp4", *one)[0] == 0
    code, _, err = infer(capsys, model_path, src, "-o", tmp_path / "smooth.mp4", "--temporal",
                         "--temporal-strength", "0.9", "--tile", "0", *one)
    assert code == 0, err
    plain, smooth = frames_of(tmp_path / "plain.mp4"), frames_of(tmp_path / "smooth.mp4")
    assert len(plain) == len(smooth) == 6
    assert all(np.array_equal(a, b) for a, b in zip(plain, smooth))


def test_a_damaged_video_still_finishes_with_temporal(capsys, tmp_path, model_path):  # noqa: F811
    src = make_video(tmp_path / "broken.mp4", frames=24, width=96, height=64, audio=None)
    data = bytearray(src.read_bytes())
    middle, span = len(data) // 2, len(data) // 20
    data[middle:middle + span] = np.random.default_rng(0).integers(0, 256, span, dtype=np.uint8).tobytes()
    src.write_bytes(bytes(data))
    code, _, err = infer(capsys, model_path, src, "-o", tmp_path / "fixed.mp4", "--temporal")
    assert code == 0, err
    assert sum("damaged video" in line for line in err.splitlines()) == 1 and "Traceback" not in err
    got = describe(tmp_path / "fixed.mp4")
    assert 12 <= got["frames"] <= 24 and got["size"] == (96, 64)


def test_temporal_lowers_frame_to_frame_change_of_a_moving_pattern(capsys, tmp_path, model_path):  # noqa: F811
    src = make_video(tmp_path / "moving.mp4", frames=12, audio=None)
    assert infer(capsys, model_path, src, "-o", tmp_path / "plain.mp4")[0] == 0
    assert infer(capsys, model_path, src, "-o", tmp_path / "smooth.mp4", "--temporal", "--temporal-strength", "1")[0] == 0
    def change(frames):
        return np.mean([np.abs(b.astype(float) - a).mean() for a, b in zip(frames, frames[1:])])
    assert change(frames_of(tmp_path / "smooth.mp4")) < change(frames_of(tmp_path / "plain.mp4"))


def test_temporal_errors_are_one_line(capsys, tmp_path, model_path, monkeypatch, make_image):  # noqa: F811
    src = still_video(tmp_path / "still.mkv", frames=2)
    code, _, err = infer(capsys, model_path, make_image(), "-o", tmp_path / "x.png", "--temporal")
    assert code == 2 and "no video" in err and len(err.strip().splitlines()) == 1
    code, _, err = infer(capsys, model_path, src, "-o", tmp_path / "x.mp4", "--temporal-strength", "0.3")
    assert code == 2 and "--temporal" in err
    monkeypatch.setitem(sys.modules, "cv2", None)
    code, _, err = infer(capsys, model_path, src, "-o", tmp_path / "y.mp4", "--temporal")
    assert code == 2 and "opencv-python-headless" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "y.mp4").exists()
