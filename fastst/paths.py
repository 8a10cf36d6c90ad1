"""Guards every command runs before it does any work: no output may be a path the command reads
(resolved through symlinks and hard links), nor lie inside a folder it reads, and every output folder
must exist (or be creatable) and accept files. Errors name the path and say what it collides with."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import FaststError

PathLike = str | os.PathLike


def _real(path: PathLike) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


class InputFiles:
    """The files a command reads, indexed by resolved path and by (device, inode): `find` tells in
    constant time which of them, if any, a path names (equal after resolving symlinks, or a hard link
    to one inode), so checking every output of a large folder against every input stays linear."""

    def __init__(self, paths: Iterable[PathLike | None]) -> None:
        self.by_real: dict[Path, PathLike] = {}
        self.by_inode: dict[tuple[int, int], PathLike] = {}
        for p in paths:
            if p is None:
                continue
            self.by_real.setdefault(_real(p), p)
            try:
                st = os.stat(p)
            except OSError:
                continue
            self.by_inode.setdefault((st.st_dev, st.st_ino), p)

    def find(self, path: PathLike) -> PathLike | None:
        """The first input that `path` names, or None."""
        hit = self.by_real.get(_real(path))
        if hit is not None:
            return hit
        try:
            st = os.stat(path)
        except OSError:
            return None
        return self.by_inode.get((st.st_dev, st.st_ino))


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file: equal after resolving symlinks, or hard links to one inode."""
    return InputFiles([b]).find(a) is not None


def inside(path: PathLike, folder: PathLike) -> bool:
    """Whether `path` (resolved) is `folder` (resolved) or lies somewhere under it."""
    p, f = _real(path), _real(folder)
    return p == f or f in p.parents


def check_not_inputs(outputs: Iterable[PathLike | None], inputs: Iterable[PathLike | None],
                     input_folders: Iterable[PathLike | None] = ()) -> None:
    """FaststError if an output is one of the `inputs` (files this command reads) or lies inside one of
    the `input_folders` (folders it reads every file of, e.g. training photos: an output written there
    would be read as an input next time). None entries are ignored."""
    ins = InputFiles(inputs)
    folders = [p for p in input_folders if p is not None]
    for out in outputs:
        if out is None:
            continue
        src = ins.find(out)
        if src is not None:
            raise FaststError(f"is also an input of this command ({src}); refusing to overwrite it", out)
        for folder in folders:
            if inside(out, folder):
                raise FaststError(f"is inside the input folder {folder}; write outputs elsewhere", out)


def check_writable_folder(folder: PathLike, create: bool = False) -> None:
    """FaststError unless files can be written in `folder` (by trying: permission bits do not bind root,
    and a read-only mount shows only on a write). With `create`, a missing folder is fine if its nearest
    existing parent accepts files; nothing is created here."""
    folder = Path(folder) if str(folder) else Path(".")
    probe = folder
    while not probe.exists():
        if not create:
            raise FaststError("output folder does not exist", folder)
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise FaststError("is not a folder (an output folder was expected)" if probe == folder
                          else f"cannot create the output folder: {probe} is a file", probe)
    try:
        fd, name = tempfile.mkstemp(prefix=".fastst-write-check.", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        why = "read-only file system" if e.errno == 30 else (e.strerror or str(e)).lower()
        raise FaststError(f"cannot write in this folder ({why})", probe) from None


def check_overwrite(outputs: Iterable[PathLike | None], overwrite: bool, folders: bool = False) -> None:
    """FaststError, before any work, for an output that exists unless `overwrite` (the wording of every
    command's --overwrite), and for one that is a folder unless `folders` (outputs that are folders, e.g.
    a Core ML package). None entries are ignored. Check inputs first (`check_not_inputs`): an input
    exists too, and --overwrite never makes it an output."""
    for out in outputs:
        if out is None:
            continue
        if os.path.isdir(out) and not folders:
            raise FaststError("is a folder, not a file", out)
        if os.path.lexists(out) and not overwrite:
            raise FaststError("output exists; use --overwrite to replace it", out)
