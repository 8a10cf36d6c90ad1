"""Video stylization with PyAV: decode, stylize in batches, optionally smooth each output along the
optical flow (`temporal`), encode H.264 (yuv420p) at the source frame rate and size, carry the source
audio along. Decoding and encoding run in their own threads so they overlap with the network; a
damaged input is processed as far as it decodes, with one warning naming the frames that were
skipped or came out of the decoder with errors."""
from __future__ import annotations

import logging
import os
import queue
import time
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import FaststError
from ..progress import progress_bar
from .pipeline import Pipeline
from .videoio import (
    OUTPUT_FORMATS,
    Timestamps,
    VideoInfo,
    VideoResult,
    damage_report,
    open_input,
    open_output,
    output_size,
    probe_video,
)

log = logging.getLogger(__name__)

_END = object()


def stylize_video(stylizer: Any, src: str | os.PathLike, dst: str | os.PathLike, weights: torch.Tensor,
                  pixel_blend: float = 1.0, preserve_colors: bool = False, max_size: int | None = None,
                  batch_size: int = 4, tile: int | None = None, progress: bool = True,
                  temporal: float = 0.0) -> VideoResult:
    """Stylize every frame of `src` into `dst` (H.264 yuv420p, source frame rate, source size or
    `max_size`, even dimensions) with the source audio copied (or AAC where the container needs it).

    `stylizer` is a fastst.inference.stylizer.Stylizer, `weights` its (1, S) row weights (strength and
    stroke composed: `Stylizer.controls`), `pixel_blend` < 1 mixes each frame back in. Written
    atomically: `dst` appears only when the whole video is done. Frames lost to damage are skipped with
    one warning; an input with no decodable frame raises FaststError. `temporal` in (0, 1] blends each
    output with the previous one warped along the flow (`fastst.temporal.TemporalBlender`; needs OpenCV).
    """
    import av
    import av.logging

    src, dst = Path(src), Path(dst)
    fmt = OUTPUT_FORMATS.get(dst.suffix.lower())
    if fmt is None:
        raise FaststError(f"video output must be .mp4, .mov or .mkv (H.264), not '{dst.suffix}'", dst)
    smoother = None
    if temporal:
        from ..temporal import TemporalBlender

        smoother = TemporalBlender(temporal)  # before anything is written: a missing OpenCV fails here
    info = probe_video(src)
    size = output_size(info.width, info.height, max_size)
    frame_options = {"pixel_blend": pixel_blend, "preserve_colors": preserve_colors, "tile": tile}
    old_level = av.logging.get_level()
    t0 = time.perf_counter()
    with atomic_path(dst) as tmp:
        container = open_input(src)
        try:
            av.logging.set_level(av.logging.ERROR)  # decoder errors are captured, not printed
            with av.logging.Capture(local=False) as logs:
                run = VideoRun(stylizer, weights, frame_options, container, tmp, fmt, info, size, logs)
                run.smoother = smoother
                result = run.run(max(1, int(batch_size)), progress, src.name)
        finally:
            av.logging.set_level(old_level)
            container.close()
        if result.frames == 0:  # inside the block: the temporary file is removed, nothing is written
            raise FaststError("no frame could be decoded", src)
    result.path = dst
    result.seconds = time.perf_counter() - t0
    report = damage_report(result)
    if report:
        log.warning("%s: damaged video: %s", src, report)
    return result


class VideoRun:
    """One video being stylized: a reader thread decodes frames and numbers them by timestamp, the
    calling thread stylizes them in batches, a writer thread encodes them with the audio. Decoder
    errors logged while a frame decodes mark it damaged."""

    def __init__(self, stylizer: Any, weights: torch.Tensor, frame_options: dict[str, Any], container: Any,
                 tmp: Path, fmt: str, info: VideoInfo, size: tuple[int, int], logs: list) -> None:
        import av

        self.stylizer, self.weights, self.frame_options = stylizer, weights, frame_options
        self.container, self.info, self.logs = container, info, logs
        self.width, self.height = size
        # no frame threading: it would delay frames and blur which frame a decoder error belongs to
        self.vin = container.streams.video[0]
        self.ain = container.streams.audio[0] if container.streams.audio else None
        self.start = (container.start_time or 0) / 1e6
        try:
            opened = open_output(tmp, fmt, self.width, self.height, info.fps, self.ain, remux=True)
        except (ValueError, av.FFmpegError):
            opened = open_output(tmp, fmt, self.width, self.height, info.fps, self.ain, remux=False)
        self.out, self.vout, self.aout, self.audio = opened
        self.copy_audio = self.audio.startswith("copied")
        self.decoder_name = self.vin.codec_context.name
        self.pipe = Pipeline()
        self.frames_q: queue.Queue = queue.Queue()  # bounded in `run`, by the batch size
        self.out_q: queue.Queue = queue.Queue()
        self.stamps = Timestamps(self.vin.time_base or Fraction(1, 90000), info.fps, self.start)
        self.damaged: list[int] = []
        self.read_errors = 0  # demuxing and decoding failures
        self.logs_seen = 0
        self.decoder_log_errors = 0
        self.smoother: Any = None  # a fastst.temporal.TemporalBlender, or None
        self.last_index = -2  # the frame the smoother saw last

    # ------------------------------------------------------------------------------- reader thread

    def decoder_errors(self) -> int:
        """Errors the video decoder has logged so far (it conceals many)."""
        import av

        new = self.logs[self.logs_seen:]
        self.logs_seen += len(new)
        errors = [name for level, name, _ in new if level <= av.logging.ERROR]
        self.decoder_log_errors += errors.count(self.decoder_name)
        return self.decoder_log_errors

    def to_rgb(self, frame: Any) -> np.ndarray:
        w, h = self.width, self.height
        if (w, h) == (frame.width // 2 * 2, frame.height // 2 * 2):
            return frame.to_ndarray(format="rgb24")[:h, :w]
        return frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()

    def emit_video(self, frames: Iterable[Any], errors_before: int, flush: bool = False) -> bool:
        """Number decoded frames and queue them for the network; False once the run is stopping."""
        ready = []
        for frame in frames:
            # damage the decoder logged, or flagged on the frame (FFmpeg's AV_FRAME_FLAG_CORRUPT)
            bad = self.decoder_errors() > errors_before or bool(getattr(frame, "is_corrupt", False))
            ready += self.stamps.push(frame.pts, frame.dts, (self.to_rgb(frame), bad))
        if flush:
            ready += self.stamps.flush()
        for index, (rgb, bad) in ready:
            if bad:
                self.damaged.append(index)
            if not self.pipe.put(self.frames_q, (index, rgb)):
                return False
        return True

    def audio_packet(self, packet: Any) -> None:
        """Queue an audio packet for the writer: shifted to the output's zero when copied, else decoded."""
        import av

        if self.copy_audio:
            if packet.dts is None and packet.pts is None:
                return
            shift = round(self.start / packet.time_base) if packet.time_base else 0
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self.aout
            self.pipe.put(self.out_q, ("audio", packet))
            return
        try:
            for frame in packet.decode():
                self.pipe.put(self.out_q, ("aframe", frame))
        except av.FFmpegError:
            pass  # a damaged audio packet: its samples are dropped

    def read(self) -> None:
        """Demux and decode the whole input (the reader thread), then flush the decoder."""
        import av

        demux = self.container.demux(*([self.vin] + ([self.ain] if self.ain is not None else [])))
        failures = 0
        while not self.pipe.stop.is_set():
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.FFmpegError:
                self.read_errors += 1
                failures += 1
                if failures > 100:
                    break
                continue
            failures = 0
            if packet.stream.type == "audio":
                if packet.size:
                    self.audio_packet(packet)
                continue
            before = self.decoder_errors()
            try:
                frames = packet.decode()
            except av.FFmpegError:
                self.read_errors += 1
                continue
            if not self.emit_video(frames, before):
                return
        if not self.pipe.stop.is_set():
            try:
                flushed = list(self.vin.codec_context.decode(None))
            except av.FFmpegError:
                self.read_errors += 1
                flushed = []
            self.emit_video(flushed, self.decoder_errors(), flush=True)
        self.pipe.put(self.frames_q, _END)

    # ------------------------------------------------------------------------------- writer thread

    def write(self) -> None:
        """Encode and mux what the other threads queue until the end marker, then flush the encoders."""
        while True:
            item = self.pipe.get(self.out_q)
            if item is _END:
                break
            kind, payload = item[0], item[1]
            if kind == "video":
                self.out.mux(self.vout.encode(payload))
            elif kind == "audio":
                self.out.mux(payload)
            else:
                self.out.mux(self.aout.encode(payload))
        self.out.mux(self.vout.encode(None))
        if self.aout is not None and not self.copy_audio:
            self.out.mux(self.aout.encode(None))

    # ------------------------------------------------------------------------------- network thread

    def next_batch(self, batch_size: int) -> tuple[list[tuple[int, np.ndarray]], bool]:
        """Up to `batch_size` numbered frames, and whether the input has ended."""
        batch: list[tuple[int, np.ndarray]] = []
        while len(batch) < batch_size:
            item = self.pipe.get(self.frames_q)
            if item is _END:
                return batch, True
            batch.append(item)
        return batch, False

    def stylize_batch(self, batch: list[tuple[int, np.ndarray]]) -> None:
        """Run the network on a batch of frames and queue the results for the writer."""
        import av

        x = torch.from_numpy(np.stack([a for _, a in batch])).permute(0, 3, 1, 2).float().div_(255.0)
        y = self.stylizer.batch(x, self.weights.expand(len(batch), -1), **self.frame_options)
        if self.smoother is not None:
            y = self.smooth(batch, y)
        arr = y.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for (index, _), a in zip(batch, arr):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1) / self.info.fps
            if not self.pipe.put(self.out_q, ("video", frame)):
                break

    def smooth(self, batch: list[tuple[int, np.ndarray]], y: torch.Tensor) -> torch.Tensor:
        """The batch's outputs blended in order with the previous ones along the flow; the smoother
        starts over after a lost or damaged frame, so nothing is carried across a gap."""
        out = y.permute(0, 2, 3, 1).contiguous().numpy()
        for k, (index, rgb) in enumerate(batch):
            if index != self.last_index + 1 or index in self.damaged:
                self.smoother.reset()
            out[k] = self.smoother.step(rgb, out[k])
            self.last_index = index
        return torch.from_numpy(out).permute(0, 3, 1, 2)

    def run(self, batch_size: int, progress: bool, name: str) -> VideoResult:
        """Stylize the whole video into the temporary output; returns what was written."""
        self.frames_q = queue.Queue(maxsize=2 * batch_size + 2)
        self.out_q = queue.Queue(maxsize=2 * batch_size + 64)
        bar = progress_bar(self.info.frames or None, "frames", enabled=progress, desc=name)
        written = 0
        threads = [self.pipe.thread(self.read), self.pipe.thread(self.write)]
        try:
            done = False
            while not done:
                batch, done = self.next_batch(batch_size)
                if not batch:
                    break
                self.stylize_batch(batch)
                written += len(batch)
                bar.update(len(batch))
                if self.pipe.errors:
                    raise self.pipe.errors[0]
            self.pipe.put(self.out_q, _END)
            threads[1].join()
            if self.pipe.errors:
                raise self.pipe.errors[0]
        finally:
            self.pipe.stop.set()
            for t in threads:
                t.join(timeout=10)
            bar.close()
            self.out.close()
        return self.result(written)

    def result(self, written: int) -> VideoResult:
        """What was written, with the frames lost and damaged."""
        # Gaps in the timestamps are lost frames only where the input showed damage; elsewhere they
        # are variable frame timing (held frames keep the timing either way).
        damaged_input = bool(self.read_errors or self.damaged or self.decoder_log_errors)
        skipped = list(self.stamps.gaps) if damaged_input else []
        frames, stamps = self.info.frames, self.stamps
        missing = frames - written - len(skipped)
        if frames and stamps.next is not None and missing > (0 if self.info.frames_exact else 1):
            # the container announced more frames (or a longer picture, give or take a frame of
            # rounding) than could be read: the rest are lost at the end
            skipped.extend(range(stamps.next, max(frames, stamps.next + 1)))
        damaged = sorted(set(self.damaged) - set(skipped))
        return VideoResult(path=Path(), frames=written, width=self.width, height=self.height, fps=self.info.fps,
                           seconds=0.0, audio=self.audio, skipped=skipped, damaged=damaged)
