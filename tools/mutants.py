"""A small mutation check: deliberate bugs in the core code, each of which some test must catch.

Each mutant replaces one exact snippet of one source file and names the test files (or test ids)
that should fail on it. The script copies the repository (the files git tracks or would track) to a
temporary folder once, applies one mutant at a time to that copy, never to the working tree, runs the
mutant's tests there with `pytest -x -q` and PYTHONPATH pointing at the copy, and prints a
killed/survived table. Slow (minutes per mutant on a small CPU), so not part of CI: run it before
finishing work that touched core code.

    python tools/mutants.py                   # every mutant
    python tools/mutants.py --list            # names, files and tests, nothing run
    python tools/mutants.py residual-add 'video-*'   # a subset, by name or shell pattern
    python tools/mutants.py --baseline ...    # first check that the selected tests pass unmutated

Exit status 1 if any selected mutant survived (its tests passed), else 0. Keep the list current: a
snippet that no longer occurs is reported (and tests/test_mutants.py fails), so the list cannot rot
silently.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    """One deliberate bug: `original` (occurring exactly once in `file`) becomes `replacement`."""

    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    bug: str


MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- network
    Mutant("residual-add", "fastst/transformer.py",
           "return x + self.b(self.a(x, style_weights), style_weights)",
           "return self.b(self.a(x, style_weights), style_weights)",
           ("tests/test_transformer.py",), "the residual blocks lose their identity skip"),
    Mutant("norm-eps", "fastst/transformer.py",
           "weight=gamma, bias=beta, eps=self.eps)", "weight=gamma, bias=beta, eps=1e-3)",
           ("tests/test_transformer.py",), "instance norm's epsilon 1e-5 -> 1e-3 in the fused path"),
    Mutant("upsample-taps", "fastst/fastconv.py",
           "return torch.stack([t0, t1 + t2], dim), torch.stack([t0 + t1, t2], dim)",
           "return torch.stack([t0, t1 + t2], dim), torch.stack([t0, t1 + t2], dim)",
           ("tests/test_transformer.py",), "odd output rows of the upsampling conv use the even rows' taps"),
    # ---------------------------------------------------------------- model file
    Mutant("modelfile-unvalidated", "fastst/modelfile.py",
           "    validate_blob(blob, path, FORMAT, FORMAT_VERSION)\n", "",
           ("tests/test_modelcheck.py",), "a model file is built without being validated (strict loading alone "
           "lets crafted sizes allocate and wrong types raise tracebacks)"),
    Mutant("modelcheck-finite", "fastst/modelcheck.py",
           "if not bool(torch.isfinite(value).all()):", "if False:",
           ("tests/test_modelcheck.py",), "NaN and infinite weights load (and give black images)"),
    Mutant("modelcheck-shapes", "fastst/modelcheck.py",
           "if name in state and state[name].shape != shape:", "if False:",
           ("tests/test_modelcheck.py",), "weights of the wrong shape reach load_state_dict"),
    Mutant("atomic-in-place", "fastst/atomic.py",
           'with atomic_path(path) as tmp, open(tmp, "wb") as f:', 'with open(path, "wb") as f:',
           ("tests/test_atomic_io.py",), "model files and checkpoints written in place: a kill truncates them"),
    Mutant("paths-no-links", "fastst/paths.py",
           "    return Path(os.path.realpath(os.fspath(path)))", "    return Path(os.path.abspath(os.fspath(path)))",
           ("tests/test_atomic_io.py",), "an output symlinked to an input is not seen as that input"),
    Mutant("guards-nan-loss", "fastst/training/guards.py",
           "        if not math.isfinite(value):", "        if False:",
           ("tests/test_bad_inputs.py::test_bad_input[train-nan-loss]",), "a diverged run writes a NaN model"),
    Mutant("modelcheck-missing-weights", "fastst/modelcheck.py",
           "missing = [k for k in expected if k not in state and k not in OPTIONAL_WEIGHTS]", "missing = []",
           ("tests/test_modelcheck.py",), "a truncated model file passes validation (load_state_dict then "
           "fails with a traceback; loading with strict=False would also run it with random layers)"),
    Mutant("modelcheck-fewer-styles", "fastst/modelcheck.py",
           "if count is not None and len(styles) != count:", "if count is not None and len(styles) > count:",
           ("tests/test_modelcheck.py",), "a style table shorter than the network's styles passes validation"),
    Mutant("modelfile-hashes-dropped", "fastst/modelfile.py",
           '"sha256": self.sha256,', '"sha256": "",',
           ("tests/test_modelfile.py",),
           "the style images' hashes are not saved"),
    # ---------------------------------------------------------------- losses and objectives
    Mutant("gram-normalisation", "fastst/losses.py",
           "return _Gram.apply(f.float() if fp32 else f) / (c * h * w)",
           "return _Gram.apply(f.float() if fp32 else f) / (h * w)",
           ("tests/test_losses.py",), "Gram matrices divided by H·W instead of C·H·W"),
    Mutant("gatys-layer-weight", "fastst/objectives/gatys.py",
           "{name: 1.0 / len(self.style_layers) for name in self.style_layers}",
           "{name: 1.0 for name in self.style_layers}",
           ("tests/test_gatys.py",), "Gatys' style layers weighted 1 instead of 1/|L|"),
    Mutant("perceptual-weights-swapped", "fastst/objectives/perceptual.py",
           "a, b, g = self.weights", "b, a, g = self.weights",
           ("tests/test_training.py",), "the trainer's content and style weights swapped"),
    Mutant("gatys-in-trainer-terms", "fastst/objectives/settings.py",
           "/ (4 * len(style_layers) * elements)", "/ (len(style_layers) * elements)",
           ("tests/test_training.py::test_gatys_objective_is_gatys_loss_rescaled",),
           "Gatys' objective in the trainer's terms loses its 1/4"),
    # ---------------------------------------------------------------- loss network
    Mutant("lossnet-rgb", "fastst/lossnet.py",
           "return x.flip(1) if self.bgr else x", "return x",
           ("tests/test_lossnet.py",), "Caffe weights fed RGB instead of BGR"),
    # ---------------------------------------------------------------- training
    Mutant("training-one-style", "fastst/training/module.py",
           "weights = torch.nn.functional.one_hot(styles, self.net.num_styles)",
           "weights = torch.nn.functional.one_hot(torch.zeros_like(styles), self.net.num_styles)",
           ("tests/test_training.py",), "every training sample runs in style 0"),
    Mutant("data-styles-cycle", "fastst/data.py",
           "(sample_id // n) % self.num_styles", "sample_id % self.num_styles",
           ("tests/test_training.py",), "styles follow the file index instead of cycling per pass"),
    Mutant("resume-crop-seed", "fastst/data.py",
           "self.num_styles, self.seed, self.crop_scale)", "self.num_styles, self.seed + done, self.crop_scale)",
           ("tests/test_resume.py",), "a resumed run draws other crops"),
    Mutant("resume-sampler-short", "fastst/data.py",
           "return max(0, math.ceil((self.total - self.rank) / self.world))",
           "return max(0, math.ceil((self.total - self.start - self.rank) / self.world))",
           ("tests/test_resume.py",), "a resumed run's epoch ends early and repeats data"),
    Mutant("resume-sampler-restarts", "fastst/data.py",
           "start=done * per_step, rank=rank", "start=0, rank=rank",
           ("tests/test_resume.py",), "a resumed run restarts the data at sample 0"),
    # ---------------------------------------------------------------- inference
    Mutant("colours-swapped", "fastst/inference/stylizer.py",
           "stylized = _preserve_colors(content, stylized)", "stylized = _preserve_colors(stylized, content)",
           ("tests/test_infer.py",), "preserve_colors keeps the stylized image's colours on the photo's luminance"),
    Mutant("auto-tile-threshold", "fastst/inference/stylizer.py",
           "tile = AUTO_TILE if (h * w > AUTO_TILE_PIXELS", "tile = AUTO_TILE if (h * w > 4 * AUTO_TILE_PIXELS",
           ("tests/test_infer.py",), "images up to 16 MP run whole (memory unbounded)"),
    Mutant("tile-stats-downscale", "fastst/inference/tiling.py",
           "f = math.sqrt(stats_pixels / (h * w))", "f = math.sqrt(stats_pixels / (h * w)) / 2",
           ("tests/test_infer.py",), "tile statistics from an image downscaled 4x more (in pixels)"),
    Mutant("blend-label", "fastst/inference/planning.py",
           'f"{safe_label(n)}{round(100 * w)}"', 'f"{safe_label(n)}{round(10 * w)}"',
           ("tests/test_infer.py",), "blend outputs named by tenths instead of percent"),
    Mutant("video-audio-reencoded", "fastst/inference/video.py",
           "info.fps, self.ain, remux=True)", "info.fps, self.ain, remux=False)",
           ("tests/test_video.py",), "the source audio is re-encoded instead of copied"),
    Mutant("video-batch-reversed", "fastst/inference/video.py",
           "for (index, _), a in zip(batch, arr):", "for (index, _), a in zip(batch, arr[::-1]):",
           ("tests/test_video.py",), "the frames of each batch are written in reverse order"),
    Mutant("video-timestamp-window", "fastst/inference/videoio.py",
           "WINDOW = 8", "WINDOW = 0", ("tests/test_video.py",),
           "packed B-frame timestamps are no longer sorted"),
    # ---------------------------------------------------------------- images
    Mutant("images-16-bit", "fastst/images.py",
           'top = 65535.0 if arr.max() > 255 or im.mode.startswith("I;16") else 255.0', "top = 255.0",
           ("tests/test_images.py",), "16-bit grey images scaled as 8-bit"),
    # ---------------------------------------------------------------- export
    Mutant("onnx-static-batch", "export/onnx_export.py",
           'dynamic_shapes={"image": {0: batch, 2: height, 3: width}, "style": {0: batch}}',
           'dynamic_shapes={"image": {2: height, 3: width}, "style": {}}',
           ("tests/test_export.py",), "the ONNX batch dimension fixed at the example's 2"),
    Mutant("coreml-input-scale", "export/coreml_export.py",
           "scale=1.0 / 255.0, color_layout", "scale=1.0, color_layout",
           ("tests/test_export.py",), "Core ML feeds the network 0-255 instead of 0-1"),
    Mutant("coreml-input-bias", "export/coreml_export.py",
           "scale=1.0 / 255.0, color_layout", "scale=1.0 / 255.0, bias=[0.05, 0.05, 0.05], color_layout",
           ("tests/test_export.py",), "Core ML adds a bias to the input image"),
    # ---------------------------------------------------------------- Gatys
    Mutant("gatys-colours-not-restored", "gatys/optimize.py",
           "return preserve_colors(resize_exact(self.colour_source, *out.shape[-2:]), out)", "return out",
           ("tests/test_gatys.py",), "original colours are not put back"),
    Mutant("gatys-no-line-search", "gatys/optimizers.py",
           'line_search_fn="strong_wolfe" if line_search else None', "line_search_fn=None",
           ("tests/test_gatys.py",), "L-BFGS without its line search"),
)


def select(names: list[str]) -> list[Mutant]:
    """The mutants matching any of `names` (exact names or shell patterns); all for none."""
    if not names:
        return list(MUTANTS)
    chosen = [m for m in MUTANTS if any(fnmatch.fnmatchcase(m.name, n) for n in names)]
    unknown = [n for n in names if not any(fnmatch.fnmatchcase(m.name, n) for m in MUTANTS)]
    if unknown:
        raise SystemExit(f"mutants.py: no mutant named {', '.join(unknown)} (see --list)")
    return chosen


def tracked_files(root: Path) -> list[str]:
    """The files git tracks or would track (untracked but not ignored); everything else is left behind."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p and (root / p).is_file()]


def copy_repository(root: Path, dest: Path) -> None:
    for rel in tracked_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), *filter(None, [env.get("PYTHONPATH")])])
    env.update(PYTHONDONTWRITEBYTECODE="1", OMP_WAIT_POLICY="PASSIVE")
    return env


def check_imports_from(copy: Path) -> None:
    """The copy, not an installed fastst, must be what the tests import."""
    code = "import fastst, gatys, export; print(fastst.__file__, gatys.__file__, export.__file__)"
    r = subprocess.run([sys.executable, "-c", code], cwd=copy, env=environment(copy), capture_output=True, text=True)
    paths = r.stdout.split()
    if r.returncode or len(paths) != 3 or not all(Path(p).resolve().is_relative_to(copy.resolve()) for p in paths):
        raise SystemExit(f"mutants.py: the copy's packages are not the ones imported ({r.stdout.strip() or r.stderr})")


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, str, float]:
    """pytest -x -q on `tests` in the copy: (status, first failure line, seconds)."""
    present = tuple(t for t in tests if (copy / t.split("::")[0]).is_file())
    if not present:
        return "no tests", "none of " + ", ".join(tests) + " exists", 0.0
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *present]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=copy, env=environment(copy), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "killed (timeout)", f"no result in {timeout:.0f} s", time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    lines = (r.stdout + r.stderr).splitlines()
    failure = next((x for x in lines if x.startswith(("FAILED ", "ERROR "))), lines[-1] if lines else "")
    status = {0: "SURVIVED", 1: "killed", 5: "no tests"}.get(r.returncode, f"killed (pytest exit {r.returncode})")
    return status, failure.strip(), seconds


def apply(copy: Path, mutant: Mutant) -> str | None:
    """Write the mutant into the copy; returns the original text to restore, or None if the snippet is
    missing or not unique."""
    path = copy / mutant.file
    text = path.read_text()
    if text.count(mutant.original) != 1:
        return None
    path.write_text(text.replace(mutant.original, mutant.replacement))
    return text


def table(rows: list[tuple[str, str, str, str, str]]) -> str:
    head = ("mutant", "file", "result", "time", "caught by / note")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths) + "  {}"
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths), "-" * 16)]
    out += [fmt.format(*r) for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutants to run (names or shell patterns; default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--baseline", action="store_true", help="first run each selected test set unmutated")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per test run (default: 900)")
    args = parser.parse_args(argv)
    chosen = select(args.names)
    if args.list:
        for m in chosen:
            print(f"{m.name:28} {m.file:32} {' '.join(m.tests)}\n{'':28} {m.bug}")
        return 0
    rows: list[tuple[str, str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="fastst-mutants-") as tmp:
        copy = Path(tmp) / "repo"
        copy_repository(ROOT, copy)
        check_imports_from(copy)
        if args.baseline:
            for tests in dict.fromkeys(m.tests for m in chosen):
                status, failure, seconds = run_tests(copy, tests, args.timeout)
                print(f"baseline {' '.join(tests)}: {'pass' if status == 'SURVIVED' else status} "
                      f"({seconds:.0f} s) {failure if status != 'SURVIVED' else ''}", flush=True)
                if status not in ("SURVIVED", "no tests"):
                    raise SystemExit("mutants.py: the unmutated tests fail; fix them first")
        for m in chosen:
            original = apply(copy, m)
            if original is None:
                rows.append((m.name, m.file, "snippet missing", "-", "update the list: " + m.original[:50]))
            else:
                try:
                    status, failure, seconds = run_tests(copy, m.tests, args.timeout)
                finally:
                    (copy / m.file).write_text(original)
                note = m.bug if status == "SURVIVED" else failure
                rows.append((m.name, m.file, status, f"{seconds:.0f} s", note))
            print(" | ".join(rows[-1]), flush=True)
    print()
    print(table(rows))
    survived = [r for r in rows if r[2] == "SURVIVED"]
    print(f"\n{len(rows)} mutants: {sum(r[2].startswith('killed') for r in rows)} killed, {len(survived)} survived, "
          f"{sum(r[2] in ('no tests', 'snippet missing') for r in rows)} not run")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
