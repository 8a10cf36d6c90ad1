"""`fastst infer` on video: frame count, size, rate and audio survive; audio the container cannot
hold is transcoded to AAC; odd sizes become even; a damaged file still gives an output and one
warning; timestamps of packed B-frames and of lost frames are handled."""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from fastst import cli  # noqa: E402
from fastst.inference.videoio import Timestamps, output_size, probe_video  # noqa: E402
from fastst.modelfile import StyleInfo, save_model  # noqa: E402
from fastst.transformer import TransformerNet  # noqa: E402


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "two.fst"
    save_model(path, TransformerNet(2), [StyleInfo("starry"), StyleInfo("scream")])
    return path


def make_video(path: Path, frames: int = 10, width: int = 64, height: int = 48, fps: int = 12,
               vcodec: str = "libx264", pix_fmt: str = "yuv420p", audio: str | None = "aac",
               fmt: str | None = None) -> Path:
    """A moving test pattern, plus a 440 Hz sine tone lasting as long as the video."""
    out = av.open(str(path), "w", format=fmt)
    vs = out.add_stream(vcodec, rate=fps)
    vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
    if vcodec == "libx264":
        vs.options = {"g": "4"}
    stream = out.add_stream(audio, rate=44100, layout="mono") if audio else None
    rng = np.random.default_rng(0)
    for i in range(frames):
        img = np.zeros((height, width, 3), np.uint8)
        img[..., 0] = (np.arange(width)[None, :] * 4 + i * 10) % 256
        img[..., 1] = (np.arange(height)[:, None] * 5) % 256
        img[..., 2] = rng.integers(0, 255, (height, width))
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        out.mux(vs.encode(frame))
    out.mux(vs.encode(None))
    if stream is not None:
        rate = 44100
        sfmt = stream.codec_context.format.name
        n = rate * frames // fps
        tone = 0.3 * np.sin(2 * math.pi * 440 * np.arange(n) / rate)
        samples = {"s16": (tone * 32767).astype(np.int16), "u8": (tone * 127 + 128).astype(np.uint8)}.get(
            sfmt.rstrip("p"), tone.astype(np.float32))
        for k in range(0, n, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None, k:k + 1024]), format=sfmt, layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = rate, k, Fraction(1, rate)
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    out.close()
    return path


def describe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {"video": v.codec_context.name, "size": (v.codec_context.width, v.codec_context.height),
                "rate": v.average_rate, "pix_fmt": v.codec_context.pix_fmt,
                "audio": c.streams.audio[0].codec_context.name if c.streams.audio else None}
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    info["frames"] = len(frames)
    info["first"] = frames[0] if frames else None
    if info["audio"]:
        with av.open(str(path)) as c:
            info["audio_seconds"] = sum(f.samples / f.sample_rate for f in c.decode(audio=0))
    return info


def infer(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    code = cli.main(["infer", "-q", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_video_keeps_frames_size_rate_and_audio(capsys, tmp_path, model_path):
    src = make_video(tmp_path / "clip.mp4")
    code, out, err = infer(capsys, model_path, src, "-o", tmp_path / "out", "--batch-size", "3")
    assert code == 0, err
    assert "warning" not in err
    dst = tmp_path / "out" / "clip_starry.mp4"
    assert Path(out.strip()) == dst
    got, ref = describe(dst), describe(src)
    assert got["frames"] == 10
    assert got["size"] == (64, 48)
    assert got["rate"] == 12
    assert got["video"] == "h264" and got["pix_fmt"] == "yuv420p"
    assert got["audio"] == "aac"  # copied from the source (packet for packet: see the next test)
    assert got["audio_seconds"] == pytest.approx(ref["audio_seconds"], abs=0.05)
    assert got["audio_seconds"] == pytest.approx(10 / 12, abs=0.1)
    assert np.abs(got["first"].astype(int) - ref["first"].astype(int)).mean() > 10  # stylized
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_starry.mp4"]  # no temporary left


def audio_packets(path: Path) -> list[tuple[bytes, int | None, int | None]]:
    """The audio stream's packets as (payload, pts, dts), in the container's order."""
    with av.open(str(path)) as c:
        return [(bytes(p), p.pts, p.dts) for p in c.demux(c.streams.audio[0]) if p.size]


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of (H, W, 3) RGB, float: the full-resolution part of yuv420p."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def test_audio_packets_are_copied_and_frames_keep_their_order(capsys, tmp_path, model_path):
    """The source's AAC packets reach the output unchanged (payloads and timestamps: copied, not re-encoded),
    and output frame i is the network's picture of input frame i. Each decoded input frame is stylized here
    (fp32) and compared in luma with every output frame: measured mean |difference| 3.0-3.3 levels (of 255)
    with its own frame (H.264 at CRF 18), 32-40 with any other; bound 4.5 and nearest-is-own."""
    from fastst.inference.stylizer import Stylizer
    from fastst.modelfile import load_model

    src = make_video(tmp_path / "clip.mp4")
    dst = tmp_path / "styled.mp4"
    code, _, err = infer(capsys, model_path, src, "-o", dst, "--batch-size", "3", "--precision", "fp32")
    assert code == 0, err
    source_audio, output_audio = audio_packets(src), audio_packets(dst)
    assert len(source_audio) == len(output_audio) > 30
    assert output_audio == source_audio

    def frames(path: Path) -> list[np.ndarray]:
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24").astype(np.float64) for f in c.decode(video=0)]

    stylizer = Stylizer(load_model(model_path), device="cpu", precision="fp32")
    weights = stylizer.style_weights(0)
    expected = [luma(stylizer.forward(torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255, weights)[0]
                     .permute(1, 2, 0).numpy() * 255) for f in frames(src)]
    got = [luma(f) for f in frames(dst)]
    assert len(got) == len(expected) == 10
    errors = np.array([[np.abs(g - e).mean() for e in expected] for g in got])
    assert errors.diagonal().max() < 4.5, errors.diagonal()
    assert (errors.argmin(axis=1) == np.arange(10)).all(), errors.round(1)


def test_audio_the_container_cannot_hold_becomes_aac(capsys, tmp_path, model_path):
    src = make_video(tmp_path / "old.avi", vcodec="mpeg4", audio="pcm_u8")  # MP4 cannot hold 8-bit PCM
    assert describe(src)["audio"] == "pcm_u8"
    code, out, err = infer(capsys, model_path, src, "--style", "scream", "--strength", "0.5")
    assert code == 0, err
    got = describe(tmp_path / "old_scream.mp4")  # .avi inputs are written as .mp4
    assert (got["frames"], got["size"], got["rate"], got["audio"]) == (10, (64, 48), 12, "aac")
    assert got["audio_seconds"] == pytest.approx(10 / 12, abs=0.1)


def test_odd_size_becomes_even_and_max_size_applies(capsys, tmp_path, model_path):
    src = make_video(tmp_path / "odd.mkv", frames=4, width=65, height=49, vcodec="ffv1", pix_fmt="yuv444p", audio=None)
    assert infer(capsys, model_path, src, "-o", tmp_path / "a.mkv")[0] == 0
    got = describe(tmp_path / "a.mkv")
    assert (got["frames"], got["size"], got["audio"]) == (4, (64, 48), None)
    assert infer(capsys, model_path, src, "-o", tmp_path / "b.mp4", "--max-size", "40")[0] == 0
    assert describe(tmp_path / "b.mp4")["size"] == output_size(65, 49, 40) == (40, 30)


def test_damaged_video_gives_output_and_one_warning(capsys, tmp_path, model_path):
    src = make_video(tmp_path / "broken.mp4", frames=24, width=96, height=64, audio=None)
    data = bytearray(src.read_bytes())
    middle, span = len(data) // 2, len(data) // 20  # H.264 frames in the middle of the mdat box
    data[middle:middle + span] = np.random.default_rng(0).integers(0, 256, span, dtype=np.uint8).tobytes()
    src.write_bytes(bytes(data))
    code, out, err = infer(capsys, model_path, src, "-o", tmp_path / "fixed.mp4")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1, err
    assert "damaged video" in warnings[0] and "broken.mp4" in warnings[0]
    assert "frame" in warnings[0] and any(ch.isdigit() for ch in warnings[0])
    got = describe(tmp_path / "fixed.mp4")
    assert 12 <= got["frames"] <= 24 and got["size"] == (96, 64)
    assert "Traceback" not in err


def test_a_cut_off_matroska_file_names_the_frames_lost_at_the_end(capsys, tmp_path, model_path):
    # Matroska declares no frame count, only the picture's duration: the frames past the cut are counted from it
    src = make_video(tmp_path / "whole.mkv", frames=48, width=64, height=48, audio=None)
    assert probe_video(src).frames == 48 and not probe_video(src).frames_exact
    assert infer(capsys, model_path, src, "-o", tmp_path / "whole_out.mp4")[2].count("warning") == 0
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    code, _, err = infer(capsys, model_path, cut, "-o", tmp_path / "cut_out.mp4")
    assert code == 0, err
    warning = next(line for line in err.splitlines() if "warning" in line)
    assert "cut.mkv: damaged video" in warning and "-47; wrote" in warning, warning  # lost up to the last frame, 47
    written = describe(tmp_path / "cut_out.mp4")["frames"]
    assert 10 <= written < 40 and f"wrote {written} frames" in warning


def numbers(ts: Timestamps, stamps: list[tuple[int | None, int | None]]) -> list[int]:
    out = []
    for i, (pts, dts) in enumerate(stamps):
        out += [n for n, _ in ts.push(pts, dts, i)]
    return out + [n for n, _ in ts.flush()]


def test_packed_b_frame_timestamps_and_gaps():
    # AVI with packed B-frames labels neighbours in swapped order: no false gaps, order kept
    ts = Timestamps(Fraction(1, 24), Fraction(24), 0.0)
    pts = [1, 2, 3, 5, 4, 6, 8, 7, 9, 10, 12, 11]
    assert numbers(ts, [(p, None) for p in pts]) == list(range(1, 13))
    assert ts.gaps == []
    # a stream that loses frames 3 and 4, then one with no timestamps at all
    ts = Timestamps(Fraction(1, 1000), Fraction(10), 0.0)
    assert numbers(ts, [(p, p) for p in [0, 100, 200, 500, 600]]) == [0, 1, 2, 5, 6]
    assert ts.gaps == [3, 4]
    ts = Timestamps(Fraction(1, 1000), Fraction(10), 0.0)
    assert numbers(ts, [(None, None)] * 3) == [0, 1, 2]
