"""fastst's version, as the installed distribution reports it."""
from __future__ import annotations


def fastst_version() -> str:
    """The installed fastst version, or 'unknown' when running from a bare source tree."""
    try:
        from importlib.metadata import version
        return version("fastst")
    except Exception:
        return "unknown"
