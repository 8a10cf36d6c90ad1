"""The library's errors quote settings by name ('width', 'val_data'); the command line says flags."""
from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import FaststError


def with_flag_names(error: FaststError, flags: Mapping[str, str]) -> FaststError:
    """The library's error with each quoted setting that `flags` knows ('width', 'val_data') named by
    its flag instead (--width, --val-data)."""
    message = str(error)[len(error.path) + 2:] if error.path else str(error)
    flagged = re.sub(r"'([a-z_]+)'", lambda m: flags.get(m.group(1), m.group(0)), message)
    return FaststError(flagged, error.path)
