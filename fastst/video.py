"""Video stylization with PyAV: decode, stylize in batches, encode H.264 (yuv420p) at the source
frame rate and size, carry the source audio along. Decoding and encoding run in their own threads
so they overlap with the network; a damaged input is processed as far as it decodes, with one
warning naming the frames that were skipped or came out of the decoder with errors."""
from __future__ import annotations

import heapq
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .errors import FaststError
from .images import atomic_path, check_input_file

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
#: Output containers that hold H.264; other video inputs are written as .mp4.
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
CRF = 18  # visually lossless-ish; the stylized frames are what matters, not the bitrate
_END = object()


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


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
    frames: int
    audio: str | None


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


def _open_input(path: Path) -> Any:
    import av

    check_input_file(path, "a video file")
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise FaststError(f"not a readable video ({_short(e)})", path) from None
    if not container.streams.video:
        container.close()
        raise FaststError("has no video stream", path)
    return container


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.split(": '", 1)[0][:160]


def _frame_rate(stream: Any) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < rate <= 1000:
            return Fraction(rate).limit_denominator(100000)
    return Fraction(25)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open a video and decode its first frame; FaststError if that is not possible."""
    import av

    path = Path(path)
    container = _open_input(path)
    try:
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, StopIteration):
            first = None
        if first is None:
            raise FaststError("not a readable video (no frame could be decoded)", path)
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(first.width, first.height, _frame_rate(stream), int(stream.frames or 0), audio)
    finally:
        container.close()


def output_size(width: int, height: int, max_size: int | None = None) -> tuple[int, int]:
    """Even (width, height) for yuv420p: scaled to a long side of at most `max_size` if larger, else cropped by 1 px if odd."""
    if max_size and max(width, height) > max_size:
        s = max_size / max(width, height)
        return max(2, int(width * s) // 2 * 2), max(2, int(height * s) // 2 * 2)
    return max(2, width // 2 * 2), max(2, height // 2 * 2)


def _ranges(indices: list[int]) -> str:
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


class _Timestamps:
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


class _Pipeline:
    """Reader and writer threads around the caller's compute loop, joined by bounded queues."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def put(self, q: queue.Queue, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.errors:
                    raise self.errors[0]

    def thread(self, target: Any, *args: Any) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                self.errors.append(e)
                self.stop.set()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


def stylize_video(stylizer: Any, src: str | os.PathLike, dst: str | os.PathLike, weights: torch.Tensor,
                  strength: float = 1.0, preserve_colors: bool = False, max_size: int | None = None,
                  batch_size: int = 4, tile: int | None = None, progress: bool = True) -> VideoResult:
    """Stylize every frame of `src` into `dst` (H.264 yuv420p, source frame rate, source size or
    `max_size`, even dimensions) with the source audio copied (or AAC where the container needs it).

    `stylizer` is a fastst.stylize.Stylizer, `weights` its (1, S) style weights. Written atomically:
    `dst` appears only when the whole video is done. Frames lost to damage are skipped with one
    warning; an input with no decodable frame raises FaststError.
    """
    import av
    import av.logging

    src, dst = Path(src), Path(dst)
    fmt = OUTPUT_FORMATS.get(dst.suffix.lower())
    if fmt is None:
        raise FaststError(f"video output must be .mp4, .mov or .mkv (H.264), not '{dst.suffix}'", dst)
    info = probe_video(src)
    width, height = output_size(info.width, info.height, max_size)
    batch_size = max(1, int(batch_size))
    old_level = av.logging.get_level()
    t0 = time.perf_counter()
    with atomic_path(dst) as tmp:
        container = _open_input(src)
        capture = av.logging.Capture(local=False)
        try:
            av.logging.set_level(av.logging.ERROR)  # decoder errors are captured, not printed
            with capture as logs:
                result = _run(stylizer, container, tmp, fmt, info, width, height, weights, strength,
                              preserve_colors, batch_size, tile, progress, logs, src)
        finally:
            av.logging.set_level(old_level)
            container.close()
    result.path = dst
    result.seconds = time.perf_counter() - t0
    problems = []
    if result.skipped:
        problems.append(f"skipped {len(result.skipped)} frame(s) that could not be decoded: {_ranges(result.skipped)}")
    if result.damaged:
        problems.append(f"{len(result.damaged)} frame(s) decoded with errors (kept as the decoder concealed them): "
                        f"{_ranges(result.damaged)}")
    if problems:
        log.warning("%s: damaged video: %s; wrote %d frames (frame numbers count from 0)",
                    src, "; ".join(problems), result.frames)
    return result


def _open_output(tmp: Path, fmt: str, width: int, height: int, fps: Fraction, audio_in: Any,
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


def _run(stylizer: Any, container: Any, tmp: Path, fmt: str, info: VideoInfo, width: int, height: int,
         weights: torch.Tensor, strength: float, preserve_colors: bool, batch_size: int, tile: int | None,
         progress: bool, logs: list, src: Path) -> VideoResult:
    import av

    vin = container.streams.video[0]
    # no frame threading: it would delay frames and blur which frame a decoder error belongs to
    ain = container.streams.audio[0] if container.streams.audio else None
    fps = info.fps
    start = (container.start_time or 0) / 1e6
    try:
        out, vout, aout, audio = _open_output(tmp, fmt, width, height, fps, ain, remux=True)
    except (ValueError, av.FFmpegError):
        out, vout, aout, audio = _open_output(tmp, fmt, width, height, fps, ain, remux=False)
    copy_audio = audio.startswith("copied")
    decoder_name = vin.codec_context.name

    pipe = _Pipeline()
    frames_q: queue.Queue = queue.Queue(maxsize=2 * batch_size + 2)
    out_q: queue.Queue = queue.Queue(maxsize=2 * batch_size + 64)
    stamps = _Timestamps(vin.time_base or Fraction(1, 90000), fps, start)
    damaged: list[int] = []
    state = {"errors": 0, "frames": 0}

    seen = {"logs": 0, "errors": 0}

    def decoder_errors() -> int:  # errors the video decoder has logged so far (it conceals many)
        new = logs[seen["logs"]:]
        seen["logs"] += len(new)
        seen["errors"] += sum(1 for lvl, name, _ in new if lvl <= av.logging.ERROR and name == decoder_name)
        return seen["errors"]

    def to_rgb(frame: Any) -> np.ndarray:
        if (width, height) == (frame.width // 2 * 2, frame.height // 2 * 2):
            return frame.to_ndarray(format="rgb24")[:height, :width]
        return frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()

    def emit_video(frames: Iterator[Any], errors_before: int, flush: bool = False) -> bool:
        ready = []
        for frame in frames:
            bad = decoder_errors() > errors_before
            ready += stamps.push(frame.pts, frame.dts, (to_rgb(frame), bad))
        if flush:
            ready += stamps.flush()
        for index, (rgb, bad) in ready:
            if bad:
                damaged.append(index)
            if not pipe.put(frames_q, (index, rgb)):
                return False
        return True

    def audio_packets(packet: Any) -> None:
        if copy_audio:
            if packet.dts is None and packet.pts is None:
                return
            shift = round(start / packet.time_base) if packet.time_base else 0
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = aout
            pipe.put(out_q, ("audio", packet))
            return
        try:
            for frame in packet.decode():
                pipe.put(out_q, ("aframe", frame))
        except av.FFmpegError:
            pass  # a damaged audio packet: its samples are dropped

    def reader() -> None:
        demux = container.demux(*( [vin] + ([ain] if ain is not None else [])))
        failures = 0
        while not pipe.stop.is_set():
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.FFmpegError:
                state["errors"] += 1
                failures += 1
                if failures > 100:
                    break
                continue
            failures = 0
            if packet.stream.type == "audio":
                if packet.size:
                    audio_packets(packet)
                continue
            before = decoder_errors()
            try:
                frames = packet.decode()
            except av.FFmpegError:
                state["errors"] += 1
                continue
            if not emit_video(iter(frames), before):
                return
        if not pipe.stop.is_set():
            try:
                flushed = list(vin.codec_context.decode(None))
            except av.FFmpegError:
                state["errors"] += 1
                flushed = []
            emit_video(iter(flushed), decoder_errors(), flush=True)
        pipe.put(frames_q, _END)

    def writer() -> None:
        while True:
            item = pipe.get(out_q)
            if item is _END:
                break
            kind, payload = item[0], item[1]
            if kind == "video":
                out.mux(vout.encode(payload))
            elif kind == "audio":
                out.mux(payload)
            else:
                out.mux(aout.encode(payload))
        out.mux(vout.encode(None))
        if aout is not None and not copy_audio:
            out.mux(aout.encode(None))

    from .stylize import _progress

    bar = _progress(info.frames or None, "frames", enabled=progress, desc=src.name)
    written = 0
    threads = [pipe.thread(reader), pipe.thread(writer)]
    try:
        done = False
        while not done:
            batch: list[tuple[int, np.ndarray]] = []
            while len(batch) < batch_size:
                item = pipe.get(frames_q)
                if item is _END:
                    done = True
                    break
                batch.append(item)
            if not batch:
                break
            x = torch.from_numpy(np.stack([a for _, a in batch])).permute(0, 3, 1, 2).float().div_(255.0)
            y = stylizer.batch(x, weights.expand(len(batch), -1), strength=strength,
                               preserve_colors=preserve_colors, tile=tile)
            arr = y.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            for (index, _), a in zip(batch, arr):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1) / fps
                if not pipe.put(out_q, ("video", frame)):
                    break
            written += len(batch)
            bar.update(len(batch))
            if pipe.errors:
                raise pipe.errors[0]
        pipe.put(out_q, _END)
        threads[1].join()
        if pipe.errors:
            raise pipe.errors[0]
    except BaseException:
        pipe.stop.set()
        raise
    finally:
        pipe.stop.set()
        for t in threads:
            t.join(timeout=10)
        bar.close()
        out.close()
    if written == 0:
        raise FaststError("no frame could be decoded", src)
    # Gaps in the timestamps are lost frames only where the input showed damage; elsewhere they
    # are variable frame timing (held frames keep the timing either way).
    damaged_input = bool(state["errors"] or damaged or seen["errors"])
    skipped = list(stamps.gaps) if damaged_input else []
    if info.frames and stamps.next is not None and written + len(skipped) < info.frames:
        # the container announced more frames than could be read: the rest are lost at the end
        skipped.extend(range(stamps.next, stamps.next + info.frames - written - len(skipped)))
    return VideoResult(path=tmp, frames=written, width=width, height=height, fps=fps, seconds=0.0,
                       audio=audio, skipped=skipped, damaged=sorted(set(damaged) - set(skipped)))
