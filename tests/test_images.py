"""Image I/O: every format we promise loads to the right RGB pixels, bad input fails with one clear
line naming the file, resizing keeps the geometry, saving is atomic. All images are generated here."""
from __future__ import annotations

import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import synthetic_image, write_png
from fastst.atomic import atomic_path
from fastst.colors import preserve_colors, rgb_to_ycbcr, ycbcr_to_rgb
from fastst.errors import FaststError
from fastst.images import (
    find_images,
    load_image,
    load_pil,
    pil_to_tensor,
    resize_exact,
    resize_long_side,
    resize_short_side,
    save_image,
    tensor_to_pil,
)

RED, GREEN, BLUE, WHITE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0)


def pixel(t: torch.Tensor, y: int, x: int) -> tuple[float, ...]:
    return tuple(round(float(v), 3) for v in t[:, y, x])


def assert_rgb(t: torch.Tensor, y: int, x: int, expected: tuple[float, ...], tol: float = 0.02) -> None:
    got = t[:, y, x]
    assert torch.allclose(got, torch.tensor(expected), atol=tol), f"pixel ({y},{x}) = {pixel(t, y, x)}, want {expected}"


def assert_one_line_naming(err: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg, msg
    for w in words:
        assert w in msg.lower(), msg


# ---------------------------------------------------------------- formats


def test_png_rgb_exact_pixels(tmp_path):
    src = synthetic_image(40, 56, seed=3)
    p = write_png(tmp_path / "a.png", src)
    t = load_image(p)
    assert t.shape == (3, 40, 56) and t.dtype == torch.float32
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    # PNG is lossless: only the 8-bit quantisation separates us from the source
    assert torch.allclose(t, src, atol=0.5 / 255 + 1e-6)


def test_png_rgba_is_composited_on_white(tmp_path):
    arr = np.zeros((20, 30, 4), np.uint8)
    arr[..., 0] = 255  # red everywhere
    arr[:, :10, 3] = 255  # opaque left third
    arr[:, 10:20, 3] = 0  # transparent middle third
    arr[:, 20:, 3] = 128  # half-transparent right third
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    t = load_image(tmp_path / "a.png")
    assert t.shape == (3, 20, 30)
    assert_rgb(t, 5, 2, RED)
    assert_rgb(t, 5, 15, WHITE)
    assert_rgb(t, 5, 25, (1.0, 0.5, 0.5))  # 50 % red over white


def test_palette_png_with_transparency(tmp_path):
    im = Image.new("P", (24, 24), 0)
    im.putpalette([0, 0, 0, 0, 0, 255] + [0] * (254 * 3))  # index 0 black (transparent), 1 blue
    for x in range(12):
        for y in range(24):
            im.putpixel((x, y), 1)
    im.save(tmp_path / "p.png", transparency=0)
    assert Image.open(tmp_path / "p.png").mode == "P"
    t = load_image(tmp_path / "p.png")
    assert_rgb(t, 3, 3, BLUE)
    assert_rgb(t, 3, 20, WHITE)  # transparent black must become white, not black


def test_palette_png_without_transparency(tmp_path):
    im = Image.new("P", (20, 20), 1)
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * (254 * 3))
    im.save(tmp_path / "p.png")
    assert_rgb(load_image(tmp_path / "p.png"), 0, 0, (10 / 255, 200 / 255, 30 / 255), tol=1e-6)


def test_grayscale_and_la(tmp_path):
    Image.new("L", (20, 20), 100).save(tmp_path / "g.png")
    t = load_image(tmp_path / "g.png")
    assert t.shape == (3, 20, 20)
    assert torch.allclose(t, torch.full_like(t, 100 / 255))
    la = Image.new("LA", (20, 20), (0, 255))
    la.paste((0, 0), (10, 0, 20, 20))  # right half fully transparent black
    la.save(tmp_path / "la.png")
    t = load_image(tmp_path / "la.png")
    assert_rgb(t, 5, 5, (0.0, 0.0, 0.0))
    assert_rgb(t, 5, 15, WHITE)


def test_16bit_grayscale_png_scales_by_full_range(tmp_path):
    ramp = (np.arange(32 * 48).reshape(32, 48) * 40).astype(np.uint16)  # up to 61400 of 65535
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    t = load_image(tmp_path / "g16.png")
    assert t.shape == (3, 32, 48)
    expected = torch.from_numpy(ramp / 65535.0).float()
    assert torch.allclose(t[0], expected, atol=1 / 255)  # not clipped at 255, not black
    assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])


def test_16bit_grayscale_dark_image_is_not_brightened(tmp_path):
    im = Image.new("I;16", (24, 24))
    im.putdata([200] * (24 * 24))  # 0.3 % of full range: a very dark 16-bit image, all values < 256
    im.save(tmp_path / "dark16.png")
    t = load_image(tmp_path / "dark16.png")
    assert float(t.max()) < 2 / 255  # scaled by 65535 (16-bit range), not by 255 (which would give 0.78)


def _png_rgb16(path: Path, rgb16: np.ndarray) -> None:
    """Write a 48-bit RGB PNG by hand (Pillow cannot write one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16bit_rgb_png(tmp_path):
    a = np.zeros((20, 24, 3), np.uint16)
    a[..., 0], a[..., 1], a[..., 2] = 65535, 32768, 0
    _png_rgb16(tmp_path / "rgb16.png", a)
    assert_rgb(load_image(tmp_path / "rgb16.png"), 10, 10, (1.0, 0.5, 0.0), tol=0.01)


def test_cmyk_jpeg(tmp_path):
    im = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # no cyan, full magenta + yellow: red
    im.paste((255, 0, 255, 0), (16, 0, 32, 32))  # full cyan + yellow: green
    im.save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    t = load_image(tmp_path / "cmyk.jpg")
    assert t.shape == (3, 32, 32)
    assert_rgb(t, 16, 4, RED, tol=0.06)
    assert_rgb(t, 16, 28, GREEN, tol=0.06)


@pytest.mark.parametrize("orientation, top_left, size", [
    (1, GREEN, (20, 40)),  # as stored: green stripe on the left, width 40
    (3, RED, (20, 40)),  # rotated 180°: stripe on the right
    (6, GREEN, (40, 20)),  # rotate 90° clockwise to display: left stripe becomes the top
    (8, RED, (40, 20)),  # rotate 90° counter-clockwise: left stripe becomes the bottom
])
def test_exif_orientation_is_applied(tmp_path, orientation, top_left, size):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 255, 0), (0, 0, 10, 20))  # green stripe on the left 10 columns
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.jpg", exif=exif, quality=95)
    t = load_image(tmp_path / "o.jpg")
    assert tuple(t.shape[1:]) == size
    assert_rgb(t, 1, 1, top_left, tol=0.08)
    if orientation == 6:
        assert_rgb(t, 2, 18, GREEN, tol=0.08)  # whole top band is green
        assert_rgb(t, 37, 10, RED, tol=0.08)
    if orientation == 8:
        assert_rgb(t, 37, 10, GREEN, tol=0.08)


def test_corrupt_exif_orientation_value_is_ignored(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 9  # no such orientation
    Image.new("RGB", (40, 20), (0, 0, 255)).save(tmp_path / "o.jpg", exif=exif)
    assert load_image(tmp_path / "o.jpg").shape == (3, 20, 40)


def test_webp_and_bmp(tmp_path):
    src = synthetic_image(36, 44, seed=1)
    tensor_to_pil(src).save(tmp_path / "a.webp", lossless=True)
    tensor_to_pil(src).save(tmp_path / "a.bmp")
    for name in ("a.webp", "a.bmp"):
        t = load_image(tmp_path / name)
        assert t.shape == (3, 36, 44)
        assert torch.allclose(t, src, atol=0.5 / 255 + 1e-6), name


def test_lossy_jpeg_is_close(tmp_path):
    src = synthetic_image(48, 64, seed=2)
    tensor_to_pil(src).save(tmp_path / "a.jpg", quality=95)
    t = load_image(tmp_path / "a.jpg")
    assert t.shape == (3, 48, 64)
    assert float((t - src).abs().mean()) < 0.03


def test_uppercase_extension_and_no_extension(tmp_path):
    src = synthetic_image(20, 20)
    tensor_to_pil(src).save(tmp_path / "A.PNG")
    (tmp_path / "noext").write_bytes((tmp_path / "A.PNG").read_bytes())
    for p in (tmp_path / "A.PNG", tmp_path / "noext"):  # formats are sniffed, not guessed from the name
        assert load_image(p).shape == (3, 20, 20)


def test_load_image_size_resizes_long_side(tmp_path):
    p = write_png(tmp_path / "a.png", synthetic_image(60, 90))
    assert load_image(p, size=45).shape == (3, 30, 45)
    assert load_image(str(p), size=180).shape == (3, 120, 180)  # str paths too; upscaling allowed


# ---------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    p = tmp_path / "nope.jpg"
    with pytest.raises(FaststError) as e:
        load_image(p)
    assert_one_line_naming(e, p, "no such file")


def test_directory(tmp_path):
    with pytest.raises(FaststError) as e:
        load_image(tmp_path)
    assert_one_line_naming(e, tmp_path, "directory")


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(FaststError) as e:
        load_image(p)
    assert_one_line_naming(e, p, "empty")


def test_truncated_jpeg(tmp_path):
    p = tmp_path / "whole.jpg"
    tensor_to_pil(synthetic_image(64, 64)).save(p, quality=90)
    half = tmp_path / "half.jpg"
    data = p.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(FaststError) as e:
        load_image(half)
    assert_one_line_naming(e, half, "truncated")


def test_truncated_png(tmp_path):
    p = write_png(tmp_path / "whole.png", synthetic_image(64, 64))
    cut = tmp_path / "cut.png"
    cut.write_bytes(p.read_bytes()[:200])
    with pytest.raises(FaststError) as e:
        load_image(cut)
    assert_one_line_naming(e, cut, "truncated")


def test_corrupt_png_body(tmp_path):
    p = write_png(tmp_path / "ok.png", synthetic_image(64, 64))
    data = bytearray(p.read_bytes())
    data[120:180] = b"\xff" * 60  # smash part of the compressed pixel data
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    with pytest.raises(FaststError) as e:
        load_image(bad)
    assert_one_line_naming(e, bad, "corrupt")


def test_non_image_file_named_png(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("these are not pixels\nsecond line\n")
    with pytest.raises(FaststError) as e:
        load_image(p)
    assert_one_line_naming(e, p, "not an image")


@pytest.mark.parametrize("w, h", [(10, 64), (64, 15), (1, 1)])
def test_image_too_small(tmp_path, w, h):
    p = tmp_path / "tiny.png"
    Image.new("RGB", (w, h)).save(p)
    with pytest.raises(FaststError) as e:
        load_image(p)
    assert_one_line_naming(e, p, "too small", f"{w}x{h}")
    Image.new("RGB", (16, 16)).save(p)
    assert load_image(p).shape == (3, 16, 16)  # the limit itself is accepted


def test_load_pil_returns_rgb(tmp_path):
    Image.new("CMYK", (20, 20)).save(tmp_path / "c.jpg")
    Image.new("LA", (20, 20)).save(tmp_path / "la.png")
    for name in ("c.jpg", "la.png"):
        assert load_pil(tmp_path / name).mode == "RGB"


# ---------------------------------------------------------------- tensors and resizing


def test_pil_tensor_round_trip_is_exact():
    arr = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    t = pil_to_tensor(Image.fromarray(arr))
    assert t.shape == (3, 17, 23)
    assert np.array_equal(np.asarray(tensor_to_pil(t)), arr)
    assert np.array_equal(np.asarray(tensor_to_pil(t.unsqueeze(0))), arr)
    with pytest.raises(ValueError):
        tensor_to_pil(torch.zeros(2, 3, 4, 4))


def test_tensor_to_pil_clamps_and_rounds():
    t = torch.tensor([-0.5, 0.5, 1.7]).view(3, 1, 1).expand(3, 2, 2)
    assert np.asarray(tensor_to_pil(t))[0, 0].tolist() == [0, 128, 255]


@pytest.mark.parametrize("h, w", [(48, 64), (64, 48), (50, 50)])
def test_resize_long_side(h, w):
    t = synthetic_image(h, w)
    out = resize_long_side(t, 32)
    assert max(out.shape[1:]) == 32
    assert out.shape[1] / out.shape[2] == pytest.approx(h / w, rel=0.05)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_resize_short_side_and_exact():
    t = synthetic_image(48, 64)
    assert resize_short_side(t, 24).shape == (3, 24, 32)
    assert resize_short_side(t, 96).shape == (3, 96, 128)
    assert resize_exact(t, 20, 30).shape == (3, 20, 30)
    assert resize_exact(t.unsqueeze(0).repeat(2, 1, 1, 1), 20, 30).shape == (2, 3, 20, 30)


def test_downscaling_is_antialiased():
    noise = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0))
    small = resize_long_side(noise, 32)
    # averaging ~16 pixels per output pixel shrinks the noise; point-sampling would keep std near 0.2
    assert float(small.std()) < 0.1
    assert abs(float(small.mean()) - float(noise.mean())) < 0.01


def test_resize_same_size_is_identity_and_keeps_content():
    t = synthetic_image(40, 40)
    assert torch.equal(resize_long_side(t, 40), t)
    flat = torch.full((3, 64, 64), 0.3)
    assert torch.allclose(resize_long_side(flat, 16), torch.full((3, 16, 16), 0.3), atol=1e-5)
    down = resize_exact(synthetic_image(64, 64), 32, 32)
    assert abs(float(down.mean()) - float(synthetic_image(64, 64).mean())) < 0.01


# ---------------------------------------------------------------- saving


@pytest.mark.parametrize("name, fmt, lossless", [("o.png", "PNG", True), ("o.jpg", "JPEG", False),
                                                 ("o.jpeg", "JPEG", False), ("o.webp", "WEBP", False),
                                                 ("o.bmp", "BMP", True)])
def test_save_image_formats(tmp_path, name, fmt, lossless):
    src = synthetic_image(32, 40, seed=4)
    out = save_image(src, tmp_path / name)
    assert out == tmp_path / name
    with Image.open(out) as im:
        assert im.format == fmt and im.size == (40, 32)
    back = load_image(out)
    if lossless:
        assert torch.allclose(back, src, atol=0.5 / 255 + 1e-6)
    else:
        assert float((back - src).abs().mean()) < 0.04
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_save_image_accepts_pil_and_batched_tensor(tmp_path):
    src = synthetic_image(20, 20)
    save_image(tensor_to_pil(src), tmp_path / "a.png")
    save_image(src.unsqueeze(0), tmp_path / "b.png")
    assert torch.equal(load_image(tmp_path / "a.png"), load_image(tmp_path / "b.png"))


def test_save_rgba_pil_as_jpeg(tmp_path):
    im = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    save_image(im, tmp_path / "a.jpg")
    assert_rgb(load_image(tmp_path / "a.jpg"), 10, 10, WHITE, tol=0.02)


def test_save_image_unsupported_suffix(tmp_path):
    with pytest.raises(FaststError) as e:
        save_image(synthetic_image(20, 20), tmp_path / "out.xyz")
    assert_one_line_naming(e, tmp_path / "out.xyz", ".xyz")
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(FaststError) as e:
        save_image(synthetic_image(20, 20), tmp_path / "missing" / "out.png")
    assert "missing" in str(e.value) and "\n" not in str(e.value)


def test_saved_file_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = save_image(synthetic_image(20, 20), tmp_path / "o.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # not mkstemp's private 0600


def test_atomic_path_leaves_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "result.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash in the middle")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.png"]
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # nothing visible until the block succeeds
    assert target.read_bytes() == b"new"


def test_save_failure_leaves_previous_output_intact(tmp_path, monkeypatch):
    out = save_image(synthetic_image(20, 20, seed=1), tmp_path / "o.png")
    before = out.read_bytes()

    def broken_save(self, fp, *a, **k):
        Path(fp).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(FaststError) as e:
        save_image(synthetic_image(20, 20, seed=2), out)
    assert_one_line_naming(e, out, "no space")
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]


# ---------------------------------------------------------------- finding images


def test_find_images(tmp_path, photo_dir):
    (photo_dir / "notes.txt").write_text("x")
    (photo_dir / ".hidden.png").write_bytes(b"x")
    (photo_dir / ".ipynb_checkpoints").mkdir()
    write_png(photo_dir / ".ipynb_checkpoints" / "copy.png", synthetic_image(20, 20))
    write_png(photo_dir / "UPPER.JPG", synthetic_image(20, 20))  # PNG bytes, .JPG name: still listed
    found = find_images(photo_dir)
    assert [p.relative_to(photo_dir).as_posix() for p in found] == [
        "UPPER.JPG", "a/p1.png", "a/p3.png", "a/p5.png", "b/p0.png", "b/p2.png", "b/p4.png"]
    assert find_images(str(photo_dir)) == found


def test_find_images_missing_folder(tmp_path):
    with pytest.raises(FaststError) as e:
        find_images(tmp_path / "nowhere")
    assert_one_line_naming(e, tmp_path / "nowhere", "no such folder")


# ---------------------------------------------------------------- colour conversions (fastst.colors)


def test_ycbcr_known_values():
    rgb = torch.tensor([WHITE, RED, GREEN, BLUE, (0.0, 0.0, 0.0)]).T.reshape(3, 1, 5)
    ycc = rgb_to_ycbcr(rgb)[:, 0, :].T
    expected = torch.tensor([[1.0, 0.5, 0.5], [0.299, 0.331264, 1.0], [0.587, 0.168736, 0.081312],
                             [0.114, 1.0, 0.418688], [0.0, 0.5, 0.5]])
    assert torch.allclose(ycc, expected, atol=1e-5)


def test_ycbcr_round_trip():
    rgb = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-5)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb[0])), rgb[0], atol=1e-5)


def test_preserve_colors_takes_luminance_of_stylized_and_chroma_of_content():
    content = synthetic_image(32, 32, seed=0)
    stylized = synthetic_image(32, 32, seed=5).flip(0) * 0.8 + 0.1
    out = preserve_colors(content, stylized)
    assert out.shape == content.shape
    yo, yc, ys = rgb_to_ycbcr(out), rgb_to_ycbcr(content), rgb_to_ycbcr(stylized)
    inside = (out > 0.001).all(0) & (out < 0.999).all(0)  # where nothing was clamped
    assert inside.float().mean() > 0.5
    assert torch.allclose(yo[0][inside], ys[0][inside], atol=1e-4)
    assert torch.allclose(yo[1:][:, inside], yc[1:][:, inside], atol=1e-4)


def test_preserve_colors_gray_content_gives_gray_output_and_handles_size_mismatch():
    gray = torch.full((1, 3, 30, 30), 0.5)
    stylized = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    out = preserve_colors(gray, stylized)
    assert out.shape == (1, 3, 32, 32)
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-4) and torch.allclose(out[:, 1], out[:, 2], atol=1e-4)


def test_edge_brightness_measures_each_side_against_the_interior():
    """Outer rows and columns over the interior's mean brightness, per side: 2 px black on the top and
    left reads 0 there, and the bottom and right read 1 but for the corners they share with it; a 3 px
    band at half brightness reads 0.5 at width 2 and (3·0.5 + 1·1)/4 at width 4."""
    from fastst.images import edge_brightness

    image = torch.full((3, 40, 50), 0.6)
    image[:, :2] = 0
    image[:, :, :2] = 0
    top, bottom, left, right = edge_brightness(image)
    assert top == 0 and left == 0 and bottom == pytest.approx(48 / 50) and right == pytest.approx(38 / 40)
    band = torch.full((3, 40, 50), 0.8)
    band[:, -3:] = 0.4
    assert edge_brightness(band)[1] == pytest.approx(0.5)
    assert edge_brightness(band, width=4)[1] == pytest.approx((3 * 0.5 + 1) / 4)
    assert edge_brightness(band, width=4)[0] == pytest.approx(1)
