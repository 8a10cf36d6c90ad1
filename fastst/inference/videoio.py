"""Video containers for the video pipeline (PyAV): probing an input, the output formats and sizes
H.264 yuv420p allows, opening the output with the source audio copied or re-encoded, and numbering
decoded frames by their timestamps."""
from __future__ import annotations

import heapq
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import FaststError, first_line
from ..images import check_input_file

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
#: Output containers that hold H.264; other video inputs are written as .mp4.
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
CRF = 18  # visually lossless-ish; the stylized frames are what matters, not the bitrate


def output_suffix(src: str | os.PathLike) -> str:
    """The default output extension for a video input: its own if it can hold H.264, else .mp4."""
    suffix = Path(src).suffix.lower()
    return suffix if suffix in OUTPUT_FORMATS else ".mp4"


@dataclass
class VideoInfo:
    """What `probe_video` found: frame size, rate and count, and the audio codec (None if silent)."""

    width: int
    height: int
    fps: Fraction
    frames: int  # 0: unknown
    audio: str | None
    frames_exact: bool = True  # False: `frames` estimated from the stream's declared duration


@dataclass
class VideoResult:
    """What `stylize_video` wrote and what it had to skip."""

    path: Path
    frames: int
    width: int
    height: int
    fps: Fraction
    seconds: float
    audio: str = "none"  # "none", "copied <codec>" or "<codec> -> aac"
    skipped: list[int] = field(default_factory=list)
    damaged: list[int] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def open_input(path: Path) -> Any:
    """An opened PyAV input container with a video stream; FaststError if it is not one."""
    import av

    check_input_file(path, "a video file")
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise FaststError(f"not a readable video ({_short(e)})", path) from None
    if not container.streams.video:
        container.close()
        raise FaststError("has no video stream", path)
    kind = container.format.name
    if kind == "image2" or kind.endswith("_pipe"):  # FFmpeg reads a still image as a one-frame "video"
        container.close()
        raise FaststError(f"is a still image ({kind.removesuffix('_pipe')}), not a video: give it its image suffix", path)
    return container


def _short(e: BaseException) -> str:
    return first_line(e, 1000).split(": '", 1)[0][:160]


def _frame_rate(stream: Any) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < rate <= 1000:
            return Fraction(rate).limit_denominator(100000)
    return Fraction(25)


def _declared_seconds(stream: Any) -> float | None:
    """The video stream's own declared duration (its header's, or Matroska's per-stream DURATION tag),
    for containers that declare no frame count; None when it declares none. Not the container's
    duration: an audio track may run longer than the picture."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    try:
        h, m, sec = str(tag).split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open a video and decode its first frame; FaststError if that is not possible."""
    import av

    path = Path(path)
    container = open_input(path)
    try:
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, StopIteration):
            first = None
        if first is None:
            raise FaststError("not a readable video (no frame could be decoded)", path)
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        fps = _frame_rate(stream)
        if stream.frames:
            return VideoInfo(first.width, first.height, fps, int(stream.frames), audio)
        seconds = _declared_seconds(stream)
        return VideoInfo(first.width, first.height, fps, 0 if seconds is None else round(seconds * fps), audio,
                         frames_exact=False)
    finally:
        container.close()


def output_size(width: int, height: int, max_size: int | None = None) -> tuple[int, int]:
    """Even (width, height) for yuv420p: scaled to a long side of at most `max_size` if larger, else
    cropped by 1 px if odd."""
    if max_size and max(width, height) > max_size:
        s = max_size / max(width, height)
        return max(2, int(width * s) // 2 * 2), max(2, int(height * s) // 2 * 2)
    return max(2, width // 2 * 2), max(2, height // 2 * 2)


def damage_report(result: VideoResult) -> str | None:
    """The frames a run skipped or found damaged, in words; None for a clean input."""
    problems = []
    if result.skipped:
        problems.append(f"skipped {len(result.skipped)} frame(s) that could not be decoded: {ranges(result.skipped)}")
    if result.damaged:
        problems.append(f"{len(result.damaged)} frame(s) decoded with errors (kept as the decoder concealed them): "
                        f"{ranges(result.damaged)}")
    if not problems:
        return None
    return f"{'; '.join(problems)}; wrote {result.frames} frames (frame numbers count from 0)"


def ranges(indices: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7' (at most 10 ranges, then a count)."""
    out: list[str] = []
    start = prev = None
    for i in sorted(set(indices)):
        if start is None:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = i
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(out[:10]) + (f" and {len(out) - 10} more ranges" if len(out) > 10 else "")


class Timestamps:
    """Output frame numbers from decoder timestamps. Decoders emit frames in display order, but
    some streams label them wrongly (packed B-frames in AVI swap neighbouring pts), so the labels
    of a small window of frames are sorted and handed out in order. Numbers never go backwards;
    a jump leaves a gap (the previous frame is held, keeping audio in sync) that is recorded in
    `gaps`: frames lost to damage, or just variable frame timing."""

    WINDOW = 8

    def __init__(self, time_base: Fraction, fps: Fraction, start: float) -> None:
        self.tb, self.fps, self.start = time_base, fps, start
        self.pending: list[Any] = []
        self.labels: list[int] = []
        self.next: int | None = None
        self.gaps: list[int] = []

    def push(self, pts: int | None, dts: int | None, item: Any) -> list[tuple[int, Any]]:
        """Add one decoded frame; returns the (number, item) pairs that are ready, in order."""
        ts = pts if pts is not None else dts
        if ts is not None:
            heapq.heappush(self.labels, ts)
        self.pending.append(item)
        return self._pop(self.WINDOW)

    def flush(self) -> list[tuple[int, Any]]:
        return self._pop(0)

    def _pop(self, keep: int) -> list[tuple[int, Any]]:
        ready = []
        while len(self.pending) > keep:
            item = self.pending.pop(0)
            ts = heapq.heappop(self.labels) if len(self.labels) > len(self.pending) else None
            ready.append((self._number(ts), item))
        return ready

    def _number(self, ts: int | None) -> int:
        index = None if ts is None else round((float(ts * self.tb) - self.start) * self.fps)
        if self.next is None:
            self.next = max(0, index or 0)
        if index is None or index < self.next:
            index = self.next
        elif index > self.next:
            self.gaps.extend(range(self.next, index))
        self.next = index + 1
        return index


def open_output(tmp: Path, fmt: str, width: int, height: int, fps: Fraction, audio_in: Any,
                 remux: bool) -> tuple[Any, Any, Any, str]:
    """Output container with an H.264 stream and, if the source has audio, a copied stream
    (`remux`, where the container accepts the codec) or an AAC encoder."""
    import av

    out = av.open(str(tmp), "w", format=fmt)
    try:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": str(CRF), "preset": "medium"}
        vs.codec_context.time_base = Fraction(1) / fps
        aus, audio = None, "none"
        if audio_in is not None:
            name = audio_in.codec_context.name
            if remux:
                aus = out.add_stream_from_template(audio_in)
                audio = f"copied {name}"
            else:
                rate = audio_in.codec_context.sample_rate or 48000
                rate = rate if rate in AAC_RATES else 48000
                channels = audio_in.codec_context.channels or 2
                layout = "mono" if channels == 1 else "stereo"  # more channels are downmixed
                aus = out.add_stream("aac", rate=rate, layout=layout)
                audio = f"{name} -> aac"
        out.start_encoding()  # writes the header: an unsupported copied codec fails here
        return out, vs, aus, audio
    except BaseException:
        out.close()
        raise
