"""Whole-or-nothing file writes: every file is written to a temporary name beside its destination and
renamed over it only when whole (`atomic_path`; a folder such as a Core ML package or a web page:
`atomic_folder`); a torch object is serialised in memory first and flushed to disk (`save_torch`).
A kill, a full disk or a read-only folder leaves the destination as it was and no temporary file
behind, and a disk error is one FaststError."""
from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .errors import FaststError

DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO)
NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_prefix_suffix(path: Path) -> tuple[str, str]:
    """The temporary file's name around mkstemp's 8 random characters: `.NAME.XXXXXXXX.partSUFFIX`."""
    return f".{path.name}.", ".part" + path.suffix


def check_name_length(path: str | os.PathLike) -> None:
    """FaststError, before any work, for an output whose name (or the temporary name it is written
    under) is longer than a file system takes: otherwise the OS refuses it only when it is written."""
    path = Path(path)
    prefix, suffix = _temp_prefix_suffix(path)
    longest = len(os.fsencode(prefix + suffix)) + 8
    if longest > NAME_MAX:
        most = NAME_MAX - (longest - len(os.fsencode(path.name)))
        raise FaststError(f"output file name too long ({len(os.fsencode(path.name))} bytes; at most {most} here): "
                          "give a shorter output name", path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise FaststError("output folder does not exist", parent)
    try:
        prefix, suffix = _temp_prefix_suffix(path)
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=parent)
    except OSError as e:
        raise FaststError(f"cannot write here ({e.strerror or e})", path) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        # mkstemp creates the file 0600; give the result the permissions a plain open() would have
        # (or keep those of the file being replaced)
        mode = path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~_umask()
        os.chmod(tmp_path, mode)
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(e, OSError) and e.errno in DISK_ERRORS:  # a full or failing disk: one line, nothing left
            raise FaststError(f"cannot write the file ({e.strerror or e})", path) from None
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, what: str = "folder") -> Iterator[Path]:
    """Yield a path beside `path` (in a hidden scratch folder; not made yet) to build a folder at; when
    the block succeeds, move it onto `path`, replacing a folder there (put back if the move fails),
    else leave nothing. A full or failing disk is one FaststError: "cannot write the `what`"."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=parent))
    except OSError as e:
        raise FaststError(f"cannot write the {what} ({e.strerror or e})", path) from None
    try:
        tmp = scratch / path.name
        yield tmp
        old = scratch / "previous"
        if path.exists():
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except BaseException:
            if old.exists():
                os.rename(old, path)
            raise
    except OSError as e:
        if e.errno in DISK_ERRORS:
            raise FaststError(f"cannot write the {what} ({e.strerror or e})", path) from None
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def save_torch(obj: Any, path: str | os.PathLike, what: str = "file") -> Path:
    """torch.save(obj) to `path` atomically (see the module docstring). Serialising first keeps torch's
    zip writer away from the disk, whose errors it reports as internal assertion failures."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(obj, buf)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(buf.getbuffer())
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise FaststError(f"cannot write the {what} ({e.strerror or e})", path) from None
    return path
