"""Progress bars for long work (tiles, images, video frames), on stderr and gone when done."""
from __future__ import annotations

from typing import Any


def progress_bar(total: int | None, unit: str, enabled: bool = True, desc: str | None = None) -> Any:
    """A tqdm bar counting `unit`s; `enabled=False` gives one that draws nothing."""
    from tqdm import tqdm

    return tqdm(total=total, unit=f" {unit}", desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)
