"""The one error type users can cause: its message is a single line naming the file and the problem."""
from __future__ import annotations

import os


class FaststError(Exception):
    """A problem with the user's input or environment; the CLIs print it on one line and exit 2."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        message = " ".join(str(message).split())  # always one line
        self.path = None if path is None else os.fspath(path)
        if path is not None:
            message = f"{os.fspath(path)}: {message}"
        super().__init__(message)


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, at most `limit` characters, or its type's name when
    the message is empty: how a third-party error is quoted inside a one-line FaststError."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__
