"""Flicker of stylized video, measured by the field's standard temporal warping error (Lai et al.,
"Learning Blind Video Temporal Consistency", ECCV 2018), with the style term of the outputs beside it
so that stability is never bought by washing the style out. A script that prints a table, not a test.

    python benchmarks/flicker.py                                   # bundled model, every style, megamind.avi
    python benchmarks/flicker.py --video ../shared/data/video/megamind.avi \\
        --video /usr/share/doc/opencv-doc/examples/data/vtest.avi --frames 300   # Debian's opencv-doc
    python benchmarks/flicker.py --model before.fst --model after.fst --temporal 0.5 --csv flicker.csv
    python benchmarks/flicker.py --model before.fst --model after.fst --style starry_night --strip strip.jpg

For each clip: frames decoded and scaled to a long side of --size (even sides, area filter, as
`fastst infer` does), DIS optical flow (OpenCV, preset medium) between consecutive input frames both
ways, Ruder et al.'s forward-backward occlusion mask; E_warp = mean over pairs of the mean squared
difference, over visible pixels and RGB channels in [0, 1], between output t and output t-1 warped
to t. The input frames' own E_warp is the floor the flow's error sets; "x input" is the ratio.
style = the model's training style term (its loss network, layers and layer weights; mean over
--style-frames frames spread over the clip, blank frames left out) against the style image it stores the hash of.
--temporal S adds rows for the outputs blended along the flow (fastst.temporal.TemporalBlender, DIS
preset fast, strength S) and times both paths (network + blending, no decoding or encoding).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import benchutil as bu

COLUMNS = ("clip", "frames", "size", "model", "style", "temporal", "warp_error", "x_input", "style_term",
           "ms_per_frame", "machine")


def default_videos() -> list[Path]:
    found = [bu.shared_path("video/megamind.avi")]
    return [p for p in found if p is not None]


def read_frames(path: Path, size: int, limit: int | None) -> list[np.ndarray]:
    """RGB uint8 frames scaled to long side `size` with even sides, as the video pipeline scales them."""
    import av

    from fastst.inference.videoio import output_size

    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        width, height = output_size(stream.width, stream.height, size)
        try:
            for frame in container.decode(stream):
                frames.append(frame.reformat(width=width, height=height, format="rgb24",
                                             interpolation="AREA").to_ndarray())
                if limit and len(frames) >= limit:
                    break
        except av.FFmpegError as e:  # a damaged file: measure what decoded
            print(f"{path.name}: decoding stopped after {len(frames)} frames ({e})", file=sys.stderr)
    if len(frames) < 2:
        sys.exit(f"{path}: fewer than two frames decoded")
    return frames


def flows_for(frames: list[np.ndarray], preset: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(backward flow t -> t-1, visible mask) for every consecutive pair of input frames."""
    from fastst.temporal import DisFlow, occlusion_mask

    flow = DisFlow(preset)
    gray = [flow.gray(f) for f in frames]
    return [(b, occlusion_mask(b, flow(gray[t - 1], gray[t])))
            for t in range(1, len(gray)) for b in [flow(gray[t], gray[t - 1])]]


def stylized(stylizer, frames: list[np.ndarray], style, batch: int = 4) -> tuple[list[np.ndarray], float]:
    """The model's outputs as float32 (H, W, 3) frames, rounded to 8 bits as the video encoder gets
    them, and the network's milliseconds per frame."""
    import torch

    outs, seconds = [], 0.0
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(np.stack(frames[i:i + batch])).permute(0, 3, 1, 2).float().div_(255)
        t = time.perf_counter()
        y = stylizer.batch(x, stylizer.style_weights(style, len(x)), tile=0)
        seconds += time.perf_counter() - t
        arr = y.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        outs += [a.astype(np.float32) / 255 for a in arr]
    return outs, 1000 * seconds / len(frames)


def blended(frames: list[np.ndarray], outs: list[np.ndarray], strength: float) -> tuple[list[np.ndarray], float]:
    """The outputs smoothed along the flow at `strength`, and the blending's milliseconds per frame."""
    from fastst.temporal import TemporalBlender

    blender = TemporalBlender(strength)
    t = time.perf_counter()
    result = [np.round(blender.step(f, o) * 255) / 255 for f, o in zip(frames, outs)]
    return result, 1000 * (time.perf_counter() - t) / len(frames)


class StyleScorer:
    """The model's training style term of an output frame, against one of its style images."""

    def __init__(self, model, style_dirs: list[Path]) -> None:
        import torch

        from fastst.images import load_image
        from fastst.losses import gram_matrix
        from fastst.lossnet import LossNetwork
        from gatys.refine import find_style_image

        cfg = model.config
        self.layers = list(cfg["style_layers"])
        self.weights = dict(zip(self.layers, cfg.get("style_layer_weights") or [1.0] * len(self.layers)))
        self.net = LossNetwork(cfg.get("backbone", "vgg16-caffe"), self.layers)
        self.grams: dict[int, dict] = {}
        size = cfg.get("style_size") or 2 * cfg["image_size"]
        for i, info in enumerate(model.styles):
            path = find_style_image(model, i, style_dirs)
            if path is None:
                print(f"style term: no image found for {info.name}", file=sys.stderr)
                continue
            with torch.no_grad():
                feats = self.net(load_image(path, size=size).unsqueeze(0), self.layers)
                self.grams[i] = {n: gram_matrix(feats[n]) for n in self.layers}

    def __call__(self, style: int, outs: list[np.ndarray], picks: np.ndarray) -> float:
        import torch

        from fastst.losses import style_loss

        if style not in self.grams:
            return float("nan")
        x = torch.from_numpy(np.stack([outs[i] for i in picks]).astype(np.float32)).permute(0, 3, 1, 2)
        with torch.no_grad():
            feats = self.net(x, self.layers)
            terms = [style_loss({n: feats[n][j:j + 1] for n in self.layers}, self.grams[style], self.weights)
                     for j in range(len(picks))]
        return float(torch.stack(terms).mean())


def style_frames(frames: list[np.ndarray], count: int, min_std: float = 2.0) -> np.ndarray:
    """Indices of `count` frames spread evenly over the clip, leaving out blank ones (pixel standard
    deviation under `min_std` of 255, e.g. a film's black first frame): a blank frame's output is no
    painting, and its style term, far above the others', would decide the mean alone."""
    kept = [i for i, f in enumerate(frames) if float(f.std()) >= min_std] or list(range(len(frames)))
    spread = np.linspace(0, len(kept) - 1, min(count, len(kept))).round().astype(int)
    return np.asarray(kept)[spread]


def report(rows: list[dict], **row) -> None:
    """Print one table line and keep the row for the CSV."""
    style = "" if row.get("style_term") in ("", None) else f"{row['style_term']:.4g}"
    temporal = "" if row["model"] == "input" else f"{row['temporal']:.2f}"
    print(f"{row['clip'][:13]:<14}{row['model'][:21]:<22}{row['style'][:15]:<16}{temporal:>9}{row['warp_error']:>10.5f}"
          f"{row['x_input']:>9.1f}{style:>11}{row['ms_per_frame']:>10.1f}")
    rows.append(row)


def style_image_places() -> list[Path]:
    """Where the scorers look for style images: the bundled samples, then ../shared/data/styles."""
    return [bu.SAMPLES / "styles"] + ([bu.shared_path("styles")] if bu.shared_path("styles") else [])


def measure_clip(video: Path, models: list[tuple[str, Any]], judge: tuple | None, args: argparse.Namespace,
                 rows: list[dict], machine: str) -> None:
    """Every model ((path, loaded model) pairs) and style (and --temporal strength) on one clip; the
    strip if asked and first. `judge`: (model, its StyleScorer) scoring every model, or None: each its own."""
    from fastst.inference.stylizer import Stylizer
    from fastst.temporal import mean_warping_error

    frames = read_frames(video, args.size, args.frames)
    h, w = frames[0].shape[:2]
    t = time.perf_counter()
    pairs = flows_for(frames, args.flow_preset)
    flow_ms = 1000 * (time.perf_counter() - t) / len(pairs)
    floor = mean_warping_error([f.astype(np.float32) / 255 for f in frames], pairs)
    base = {"clip": video.name, "frames": len(frames), "size": f"{w}x{h}", "machine": machine}
    report(rows, **base, model="input", style="", temporal=0.0, warp_error=floor, x_input=1.0, style_term="",
           ms_per_frame=flow_ms)
    strip_outs: dict[tuple[str, float], list[np.ndarray]] = {}
    picks = style_frames(frames, args.style_frames)
    for model_path, model in models:
        stylizer = Stylizer(model, device="cpu")
        scored_as, scorer = judge if judge is not None else (model, StyleScorer(model, style_image_places()))
        names = args.style or [s.name for s in model.styles if s.kind == "style" and (s.group or s.name) == s.name]
        for name in names:
            index = [s.name for s in model.styles].index(name)
            judged = [s.name for s in scored_as.styles].index(name) if name in scored_as.style_names else -1
            weights, pixel_blend = (index, 1.0) if args.strength is None else stylizer.controls(name, args.strength)
            if pixel_blend != 1.0:
                sys.exit(f"{Path(model_path).name} has no identity row: --strength needs one")
            outs, ms = stylized(stylizer, frames, weights)
            label = name if args.strength is None else f"{name} s={args.strength:g}"
            variants = [(0.0, outs, ms)]
            for strength in args.temporal:
                smooth, blend_ms = blended(frames, outs, strength)
                variants.append((strength, smooth, ms + blend_ms))
            for strength, seq, ms_total in variants:
                err = mean_warping_error(seq, pairs)
                report(rows, **base, model=Path(model_path).name, style=label, temporal=strength, warp_error=err,
                       x_input=err / floor, style_term=scorer(judged, seq, picks), ms_per_frame=ms_total)
                if name == names[0]:
                    strip_outs[(Path(model_path).name, strength)] = seq
    print(f"  {len(frames)} frames {w}x{h}; the input row's ms/frame is the metric's flow, both directions")
    if args.strip:
        from flicker_strip import write_strip

        print(f"wrote {write_strip(args.strip, frames, pairs, strip_outs, args.strip_start)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", help="model file(s) to compare (default: the bundled model)")
    p.add_argument("--video", action="append", type=Path, help="clip(s) (default: ../shared/data/video/megamind.avi)")
    p.add_argument("--style", action="append", help="style name(s) (default: every style's own row, at strength 1; "
                   "not the identity, stroke-size or strength rows)")
    p.add_argument("--size", type=int, default=320, help="long side of the frames (default 320)")
    p.add_argument("--frames", type=int, help="use at most this many frames of each clip")
    p.add_argument("--temporal", type=float, action="append", default=[], help="also measure --temporal at strength S")
    p.add_argument("--flow-preset", default="medium", help="DIS preset of the metric's flow (default medium)")
    p.add_argument("--strength", type=float, help="measure each style at this strength (e.g. the model's default, "
                   "as `fastst infer` paints without options) instead of its own row (strength 1)")
    p.add_argument("--score-against", metavar="MODEL", help="score every model's style term against this model's "
                   "style images and loss layers, style by style name (default: each model's own), so that models "
                   "trained on different copies of a painting compare")
    p.add_argument("--style-frames", type=int, default=8, help="frames the style term is averaged over (default 8)")
    p.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    p.add_argument("--strip", type=Path, help="write a strip of the first clip's frames and their warped differences")
    p.add_argument("--strip-start", type=int, default=100, help="first frame of the strip (default 100)")
    args = p.parse_args(argv)

    import torch

    from fastst.errors import FaststError
    from fastst.modelfile import load_model
    from fastst.pretrained import pretrained_path

    torch.manual_seed(0)
    models = args.model or [str(pretrained_path())]
    videos = args.video or default_videos()
    if not videos:
        sys.exit("no clip: pass --video (the default ../shared/data/video/megamind.avi is not here)")
    try:  # each model file read once, and a missing or broken one fails here, before any clip is read
        loaded = [(path, load_model(path)) for path in models]
        judge_model = None if args.score_against is None else load_model(args.score_against)
    except FaststError as e:
        print(f"flicker: {e}", file=sys.stderr)
        return 2
    judge = None if judge_model is None else (judge_model, StyleScorer(judge_model, style_image_places()))
    machine = bu.machine_line()
    rows: list[dict] = []
    print(f"{'clip':<14}{'model':<22}{'style':<16}{'temporal':>9}{'E_warp':>10}{'x input':>9}{'style':>11}{'ms/frame':>10}")
    for n, video in enumerate(videos):
        measure_clip(video, loaded, judge, argparse.Namespace(**{**vars(args), "strip": args.strip if n == 0 else None}),
                     rows, machine)
    print(f"machine: {machine}")
    if args.csv:
        print(f"wrote {bu.write_csv(args.csv, rows, COLUMNS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
