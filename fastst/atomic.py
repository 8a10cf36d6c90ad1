"""Whole-or-nothing file writes: a torch object serialised in memory, written to a temporary file beside
its destination, flushed to disk and renamed over it. A kill, a full disk or a read-only folder leaves
the destination as it was and no temporary file behind, and a disk error is one FaststError."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from .errors import FaststError
from .images import atomic_path


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
