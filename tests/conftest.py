"""Shared fixtures: small generated images (no network, no ../shared)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="module")
def cli():
    """A `fastst`/`gatys` command runner forked from a warm interpreter (tests/cli_fork.py), one per test module."""
    from cli_fork import CliRunner

    runner = CliRunner()
    yield runner
    runner.close()


@pytest.fixture(scope="session", autouse=True)
def _private_weights_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests convert the vgg16-caffe weights into their own cache, never the user's ~/.cache/fastst."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FASTST_CACHE", str(tmp_path_factory.mktemp("fastst-cache")))
    yield
    mp.undo()


def synthetic_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A structured (3, H, W) image in [0, 1]: gradients, stripes and a disc, plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height).view(-1, 1).expand(height, width)
    x = torch.linspace(0, 1, width).view(1, -1).expand(height, width)
    phase = float(torch.rand(1, generator=g)) * math.pi
    r = 0.5 + 0.5 * torch.sin(2 * math.pi * 3 * x + phase)
    gch = y
    disc = (((x - 0.6) ** 2 + (y - 0.4) ** 2) < 0.05).float()
    b = 0.7 * disc + 0.3 * (1 - x)
    img = torch.stack([r, gch, b]) + 0.03 * torch.randn(3, height, width, generator=g)
    return img.clamp(0, 1)


def write_png(path: Path, t: torch.Tensor) -> Path:
    arr = (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def make_image(tmp_path: Path):
    """make_image(name, h, w, seed) -> path of a generated PNG in tmp_path."""
    def make(name: str = "img.png", height: int = 64, width: int = 64, seed: int = 0) -> Path:
        return write_png(tmp_path / name, synthetic_image(height, width, seed))
    return make


def write_training_inputs(folder: Path, widths: tuple[int, ...] = (48, 48, 48, 48)) -> Path:
    """A tiny training run's inputs in `folder`: style.png (48 px square) and photos/p0.png … (40 px
    high, one per width), each from its own seed; returns `folder`."""
    write_png(folder / "style.png", synthetic_image(48, 48, seed=7))
    (folder / "photos").mkdir()
    for i, width in enumerate(widths):
        write_png(folder / "photos" / f"p{i}.png", synthetic_image(40, width, seed=i))
    return folder


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A folder of 6 generated photos in two subfolders."""
    d = tmp_path / "photos"
    for i in range(6):
        sub = d / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        write_png(sub / f"p{i}.png", synthetic_image(72 + 8 * i, 96, seed=i))
    return d


def write_video(path: Path, images, codec: str = "mpeg4", fps: int = 12) -> Path:
    """A video file of the given (H, W, 3) uint8 frames, in that codec (yuv420p) at `fps`."""
    import av

    out = av.open(str(path), "w")
    vs = out.add_stream(codec, rate=fps)
    for i, img in enumerate(images):
        if i == 0:
            vs.height, vs.width = img.shape[:2]
            vs.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        out.mux(vs.encode(frame))
    out.mux(vs.encode(None))
    out.close()
    return path
