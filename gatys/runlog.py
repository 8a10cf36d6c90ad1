"""The per-evaluation log of a run as CSV: iteration, seconds, content, style, tv, total."""
from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from fastst.atomic import atomic_path

from .defaults import CSV_COLUMNS


def write_log(rows: Sequence[Mapping[str, float]], path: str | os.PathLike) -> Path:
    """Write the per-evaluation rows as CSV (iteration, seconds, content, style, tv, total), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for r in rows:
                writer.writerow([int(r["iteration"])] + [f"{float(r[k]):.6g}" for k in CSV_COLUMNS[1:]])
    return path


def read_log(path: str | os.PathLike) -> list[dict[str, float]]:
    """Read a log written by write_log back into rows."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: (int(v) if k == "iteration" else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]
