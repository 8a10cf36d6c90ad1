"""The onnxruntime-web files a web page needs, at one pinned version: fetched once from the npm registry
with `npm pack` (checked against the registry's sha512), kept in fastst's cache, and copied into each
exported site, so the page never loads code from a CDN at run time."""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from fastst.errors import FaststError

PACKAGE = "onnxruntime-web"
VERSION = "1.31.1"
#: npm's `dist.integrity` of onnxruntime-web@1.31.1: the tarball must hash to this.
INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
#: ort.min.js runs both WebGPU and WebAssembly (single- and multi-threaded) from the "jsep" build.
FILES = ("ort.min.js", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm")
LICENSE = "MIT"
NPM_TIMEOUT_S = 600


def runtime_files(folder: str | os.PathLike | None = None) -> Path:
    """The folder holding FILES: `folder` (an unpacked onnxruntime-web, its dist/ folder, or a folder of
    just these files) when given, else fastst's cache, filled from the npm registry on first use."""
    if folder is not None:
        return _check_folder(Path(folder))
    from fastst.backbones import cache_dir

    cached = cache_dir() / "web" / f"{PACKAGE}-{VERSION}"
    if all((cached / name).is_file() for name in FILES):
        return cached
    _fetch(cached)
    return cached


def _check_folder(folder: Path) -> Path:
    """`folder` or its dist/ (or package/dist/) subfolder, whichever holds every runtime file."""
    if not folder.is_dir():
        raise FaststError("no such folder (expected onnxruntime-web's files)", folder)
    for candidate in (folder, folder / "dist", folder / "package" / "dist"):
        if all((candidate / name).is_file() for name in FILES):
            return candidate
    missing = [n for n in FILES if not (folder / n).is_file() and not (folder / "dist" / n).is_file()]
    raise FaststError(f"not an onnxruntime-web {VERSION} folder: {', '.join(missing)} missing", folder)


def _fetch(dest: Path) -> None:
    """npm pack the pinned package into a temporary folder, check its hash, unpack FILES into `dest`."""
    npm = shutil.which("npm")
    if npm is None:
        raise FaststError(f"the web page needs {PACKAGE} {VERSION} from the npm registry and npm was not found: "
                          f"install Node.js with npm, or set 'runtime' to a folder holding {PACKAGE}'s dist files")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
        try:
            subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp, "--silent", "--prefer-offline"],
                           check=True, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, cwd=tmp)
        except subprocess.CalledProcessError as e:
            lines = (e.stderr or e.stdout or "").strip().splitlines()
            last = lines[-1][:200] if lines else f"exit {e.returncode}"
            raise FaststError(f"npm pack {PACKAGE}@{VERSION} failed ({last})") from None
        except subprocess.TimeoutExpired:
            raise FaststError(f"npm pack {PACKAGE}@{VERSION} took over {NPM_TIMEOUT_S} s; no network?") from None
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise FaststError(f"npm pack {PACKAGE}@{VERSION} wrote no tarball", tmp)
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tarballs[0].read_bytes()).digest()).decode()
        if digest != INTEGRITY:
            raise FaststError(f"{PACKAGE}@{VERSION} from npm does not match the pinned sha512; not using it", tarballs[0])
        unpacked = Path(tmp) / "files"
        unpacked.mkdir()
        with tarfile.open(tarballs[0]) as tar:
            for name in FILES:
                member = tar.getmember(f"package/dist/{name}")
                source = tar.extractfile(member)
                assert source is not None
                with source, open(unpacked / name, "wb") as out:
                    shutil.copyfileobj(source, out)
        (unpacked / "README.txt").write_text(notice())
        if dest.exists():  # a partial copy from an interrupted run
            shutil.rmtree(dest)
        os.replace(unpacked, dest)


def notice() -> str:
    """Where the runtime files come from, for the README.txt copied beside them."""
    return (f"{', '.join(FILES)}: from the npm package {PACKAGE} {VERSION} (dist/), "
            f"licence {LICENSE}, copyright Microsoft Corporation; https://onnxruntime.ai\n")


def copy_runtime(source: Path, dest: Path) -> int:
    """Copy the runtime files (and a note of their origin) into `dest`; return the bytes copied."""
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    for name in FILES:
        shutil.copyfile(source / name, dest / name)
        total += (dest / name).stat().st_size
    (dest / "README.txt").write_text(notice())
    return total
