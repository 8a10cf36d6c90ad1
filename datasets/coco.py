#!/usr/bin/env python3
"""Download the COCO train images that fast style transfer models are trained on.

    python datasets/coco.py --year 2014 --dest ~/data/coco

Standard library only, so it runs before (or without) installing fastst. It

1. downloads http://images.cocodataset.org/zips/train<YEAR>.zip into DEST, resuming a partial
   download (DEST/train<YEAR>.zip.part) if one is there, retrying on network errors;
2. verifies the archive: its size and MD5 against the published values, then that it holds the
   expected number of images (2014: 82,783; 2017: 118,287). With --skip-md5, every member's CRC
   is checked instead (zipfile.testzip);
3. extracts it atomically: into a hidden temporary folder in DEST, renamed to DEST/train<YEAR>
   only once every file is out, so an interrupted run never leaves a half-filled folder;
4. deletes the archive (unless --keep-zip) and prints the `fastst train --data ...` line to use.

Johnson et al. (2016) trained on COCO 2014 train (about 80,000 images), hence the default; 2017 train
is a superset of 2014 train+val. The images are under the COCO terms of use (Flickr licences): use
them for training, do not redistribute them. Needs about twice the archive size free on DEST while
extracting (2014: 13.5 GB archive; 2017: 19.3 GB).
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PROG = "coco.py"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """One COCO image archive: where it is, what it must look like, what it unpacks to."""

    year: str
    url: str
    size: int  # bytes
    md5: str
    folder: str  # top-level folder inside the zip
    images: int  # number of .jpg files in it

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


ARCHIVES = {
    "2014": Archive("2014", "http://images.cocodataset.org/zips/train2014.zip", 13_510_573_713,
                    "0da8c0bd3d6becc4dcb32757491aca88", "train2014", 82_783),
    "2017": Archive("2017", "http://images.cocodataset.org/zips/train2017.zip", 19_336_861_798,
                    "cced6f7f71b7629ddf16f17bbcfab6b2", "train2017", 118_287),
}


class RecipeError(Exception):
    """A problem the user can fix; printed as one line, exit status 2 (as fastst and gatys give for bad input)."""


# ---------------------------------------------------------------- progress


class Progress:
    """A one-line progress report on stderr, refreshed at most every half second."""

    def __init__(self, label: str, total: int, done: int = 0, stream=None) -> None:
        self.label, self.total, self.done = label, total, done
        self.start_done, self.start = done, time.monotonic()
        self.last = 0.0
        self.stream = stream if stream is not None else sys.stderr

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            self._print(now)

    def close(self) -> None:
        self._print(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()

    def _print(self, now: float) -> None:
        rate = (self.done - self.start_done) / max(now - self.start, 1e-6)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        self.stream.write(f"\r{self.label}: {self.done / 1e9:.2f}/{self.total / 1e9:.2f} GB ({pct:5.1f}%) "
                          f"{rate / 1e6:6.1f} MB/s, {eta / 60:5.1f} min left ")
        self.stream.flush()


# ---------------------------------------------------------------- download


def download(url: str, dest: Path, size: int, retries: int = 5, timeout: float = 60.0,
             quiet: bool = False) -> Path:
    """Fetch `url` to `dest`, resuming `dest`.part with an HTTP Range request; returns `dest`.

    A server that ignores the Range header makes the download start over. The .part file is renamed
    to `dest` only when it has exactly `size` bytes."""
    part = dest.with_name(dest.name + ".part")
    if dest.exists() and dest.stat().st_size == size:
        return dest
    attempt = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if have > size:  # not our file, or the server changed it: start again
            part.unlink()
            have = 0
        if have == size:
            break
        try:
            _fetch_range(url, part, have, size, timeout, quiet)
            attempt = 0  # progress was made; a later failure gets fresh retries
        except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets, IncompleteRead
            if isinstance(e, urllib.error.HTTPError) and e.code not in (408, 429, 500, 502, 503, 504):
                raise RecipeError(f"{url}: HTTP {e.code} {e.reason}") from None
            attempt += 1
            if attempt > retries:
                raise RecipeError(f"{url}: download failed after {retries} retries ({e}); run again to resume") from None
            wait = min(60, 2 ** attempt)
            print(f"\n{PROG}: {e}; retrying in {wait} s (attempt {attempt}/{retries})", file=sys.stderr)
            time.sleep(wait)
    os.replace(part, dest)
    return dest


def _fetch_range(url: str, part: Path, have: int, size: int, timeout: float, quiet: bool) -> None:
    headers = {"User-Agent": "fastst-coco-recipe/1"}
    if have:
        headers["Range"] = f"bytes={have}-"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
        status = getattr(resp, "status", 200)
        if have and status != 206:  # Range ignored: the body is the whole file
            have = 0
        mode = "ab" if have else "wb"
        progress = None if quiet else Progress(part.name.removesuffix(".part"), size, have)
        try:
            with open(part, mode) as f:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    if progress:
                        progress.update(len(block))
        finally:
            if progress:
                progress.close()
    got = part.stat().st_size
    if got < size:
        raise OSError(f"connection closed after {got} of {size} bytes")


# ---------------------------------------------------------------- verification


def md5sum(path: Path, quiet: bool = False) -> str:
    """MD5 of a file, read in 1 MiB blocks (COCO publishes MD5s)."""
    h = hashlib.md5()
    total = path.stat().st_size
    progress = None if quiet else Progress(f"checking {path.name}", total)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
            if progress:
                progress.update(len(block))
    if progress:
        progress.close()
    return h.hexdigest()


def image_members(zf: zipfile.ZipFile, archive: Archive) -> list[zipfile.ZipInfo]:
    """The .jpg files under the archive's folder; refuses names that would escape the folder."""
    members = []
    for info in zf.infolist():
        name = info.filename
        if name.startswith(("/", "\\")) or ".." in Path(name).parts or ":" in name:
            raise RecipeError(f"{zf.filename}: unsafe member name {name!r}")
        if not info.is_dir() and name.startswith(archive.folder + "/") and name.lower().endswith(".jpg"):
            members.append(info)
    return members


def verify(path: Path, archive: Archive, check_md5: bool = True, quiet: bool = False) -> int:
    """Check size, MD5 (or every CRC, when `check_md5` is off) and image count; returns the count."""
    size = path.stat().st_size
    if size != archive.size:
        raise RecipeError(f"{path}: {size} bytes, expected {archive.size}; delete it and run again")
    if check_md5:
        digest = md5sum(path, quiet=quiet)
        if digest != archive.md5:
            raise RecipeError(f"{path}: MD5 {digest}, expected {archive.md5} (corrupt download); "
                              "delete it and run again")
    try:
        with zipfile.ZipFile(path) as zf:
            if not check_md5:
                bad = zf.testzip()
                if bad is not None:
                    raise RecipeError(f"{path}: member {bad} fails its CRC check (corrupt download)")
            count = len(image_members(zf, archive))
    except zipfile.BadZipFile as e:
        raise RecipeError(f"{path}: not a valid zip archive ({e})") from None
    if count != archive.images:
        raise RecipeError(f"{path}: {count} images under {archive.folder}/, expected {archive.images}")
    return count


def count_images(folder: Path) -> int:
    """Number of .jpg files directly in `folder` (COCO's layout)."""
    return sum(1 for p in folder.iterdir() if p.suffix.lower() == ".jpg") if folder.is_dir() else 0


# ---------------------------------------------------------------- extraction


def extract(path: Path, dest: Path, archive: Archive, quiet: bool = False) -> Path:
    """Unpack the images into a temporary folder in `dest`, then rename it to dest/<folder>."""
    final = dest / archive.folder
    if final.exists():
        raise RecipeError(f"{final} already exists; remove it or choose another --dest")
    tmp = Path(tempfile.mkdtemp(prefix=f".{archive.folder}.partial-", dir=dest))
    try:
        with zipfile.ZipFile(path) as zf:
            members = image_members(zf, archive)
            total = sum(m.file_size for m in members)
            progress = None if quiet else Progress(f"extracting {archive.folder}", total)
            out_dir = tmp / archive.folder
            out_dir.mkdir()
            for info in members:
                target = out_dir / Path(info.filename).relative_to(archive.folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                if progress:
                    progress.update(info.file_size)
            if progress:
                progress.close()
        os.replace(out_dir, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# ---------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The recipe's options."""
    p = argparse.ArgumentParser(prog=PROG, description="Download and unpack the COCO train images for "
                                "`fastst train --data`.", epilog="Example: python datasets/coco.py --year 2014 "
                                "--dest ~/data/coco")
    p.add_argument("--year", choices=sorted(ARCHIVES), default="2014",
                   help="COCO release: 2014 (82,783 images, 13.5 GB, as in Johnson et al.) or 2017 "
                        "(118,287 images, 19.3 GB) (default: %(default)s)")
    p.add_argument("--dest", type=Path, default=Path("data/coco"),
                   help="folder for the archive and the images (default: %(default)s)")
    p.add_argument("--keep-zip", action="store_true", help="keep the archive after extracting it")
    p.add_argument("--skip-md5", action="store_true",
                   help="skip the MD5 pass; check every member's CRC instead (about as slow, but needs no "
                        "published digest, e.g. for a mirror that repacked the archive)")
    p.add_argument("--url", default=None, help="download from this mirror instead of images.cocodataset.org")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    args.dest = args.dest.expanduser()
    return args


def check_space(dest: Path, need: int) -> None:
    """Fail early rather than hours into a download that cannot fit."""
    free = shutil.disk_usage(dest).free
    if free < need:
        raise RecipeError(f"{dest}: {free / 1e9:.1f} GB free, need about {need / 1e9:.1f} GB "
                          "(archive + extracted images)")


def train_command(images: Path) -> str:
    """The command that trains on the extracted images."""
    return (f"fastst train --data {images.resolve()} --style datasets/samples/styles/starry_night.jpg "
            f"--out starry_night.fst")


def run(args: argparse.Namespace, fetch: Callable[..., Path] | None = None) -> Path:
    """Download (with `fetch`, default `download`), verify and extract; returns the image folder."""
    archive = ARCHIVES[args.year]
    if args.url:
        archive = Archive(archive.year, args.url, archive.size, archive.md5, archive.folder, archive.images)
    dest: Path = args.dest
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / archive.folder
    if final.exists():
        found = count_images(final)
        if found == archive.images:
            print(f"{final} already holds all {found} images", file=sys.stderr)
            return final
        raise RecipeError(f"{final} exists but holds {found} images, expected {archive.images}; "
                          "remove it and run again")
    zip_path = dest / ARCHIVES[args.year].filename
    part = zip_path.with_name(zip_path.name + ".part")
    have = zip_path.stat().st_size if zip_path.exists() else (part.stat().st_size if part.exists() else 0)
    check_space(dest, (archive.size - have) + archive.size)
    (fetch or download)(archive.url, zip_path, archive.size, quiet=args.quiet)
    verify(zip_path, archive, check_md5=not args.skip_md5, quiet=args.quiet)
    extract(zip_path, dest, archive, quiet=args.quiet)
    if not args.keep_zip:
        zip_path.unlink()
    return final


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        images = run(args)
    except RecipeError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"{count_images(images)} images in {images}. Train with:\n  {train_command(images)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
