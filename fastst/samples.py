"""Where the bundled sample photos and style images are: inside the installed package (`_samples`,
shipped as package data in the wheel) or, in a clone of the repository, `datasets/samples`."""
from __future__ import annotations

from pathlib import Path

from .errors import FaststError

_PACKAGE_COPY = Path(__file__).resolve().parent / "_samples"
_REPO_COPY = Path(__file__).resolve().parents[1] / "datasets" / "samples"


def samples_dir() -> Path:
    """The bundled samples folder (subfolders `photos` and `styles`); FaststError if neither copy exists."""
    for folder in (_PACKAGE_COPY, _REPO_COPY):
        if (folder / "photos").is_dir() or (folder / "styles").is_dir():
            return folder
    raise FaststError("the bundled samples are missing from this installation", _PACKAGE_COPY)


def sample_styles() -> Path:
    """The bundled style images' folder."""
    return samples_dir() / "styles"


def sample_photos() -> Path:
    """The bundled sample photos' folder."""
    return samples_dir() / "photos"
