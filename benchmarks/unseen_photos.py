"""Photos no fastst model trained on: the 49 landmark photos of Debian's `gcompris-qt-data` (the
"explore monuments" activity of GCompris), written as PNG files into a folder for
`benchmarks/recognize.py --photos`. Their licences (GCompris' data) keep them out of the repository, so
this script takes them from the Debian archive when asked. Needs apt-get and dpkg-deb.

    python benchmarks/unseen_photos.py --out unseen/
    python benchmarks/recognize.py --photos unseen/ --strengths 1 0.35
"""
from __future__ import annotations

import argparse
import io
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "gcompris-qt-data"
RESOURCE = "usr/share/gcompris-qt/rcc/explore_monuments.rcc"  # a Qt resource file holding WebP images
WEBP = re.compile(rb"RIFF(....)WEBP", re.S)


def webp_images(blob: bytes, min_side: int = 200) -> list:
    """Every WebP image stored whole in `blob` (a RIFF header gives its length), as PIL images, in file
    order; icons (shorter side under `min_side`) left out."""
    from PIL import Image

    found = []
    for m in WEBP.finditer(blob):
        size = struct.unpack("<I", m.group(1))[0] + 8
        try:
            image = Image.open(io.BytesIO(blob[m.start():m.start() + size]))
            image.load()
        except OSError:
            continue
        if min(image.size) >= min_side:
            found.append(image.convert("RGB"))
    return found


def fetch_resource(workdir: Path) -> bytes:
    """The package's resource file, downloaded and unpacked in `workdir`."""
    r = subprocess.run(["apt-get", "download", PACKAGE], cwd=workdir, capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr or r.stdout).strip().splitlines()
        sys.exit(f"apt-get download {PACKAGE} failed: {last[-1] if last else r.returncode}")
    debs = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        sys.exit(f"apt-get download {PACKAGE} left no .deb")
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(workdir / "x")], check=True)
    path = workdir / "x" / RESOURCE
    if not path.is_file():
        sys.exit(f"{debs[0].name} has no {RESOURCE}")
    return path.read_bytes()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder to write the photos into (created)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        images = webp_images(fetch_resource(Path(tmp)))
    if not images:
        sys.exit(f"no photos found in {PACKAGE}'s {RESOURCE}")
    args.out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        image.save(args.out / f"monument_{i:02d}.png")
    print(f"wrote {len(images)} photos to {args.out}")


if __name__ == "__main__":
    main()
