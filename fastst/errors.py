"""The one error type users can cause: its message is a single line naming the file and the problem."""
from __future__ import annotations

import os


class FaststError(Exception):
    """A problem with the user's input or environment; the CLIs print it on one line and exit 2."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        message = " ".join(str(message).split())  # always one line
        self.path = None if path is None else os.fspath(path)
        if path is not None:
            message = f"{shown_path(path)}: {message}"
        super().__init__(message)


def shown_path(path: str | os.PathLike) -> str:
    """A path as an error line shows it: as it is, or with control characters (a newline in a file
    name) escaped as Python writes them, so that the line stays one line."""
    text = os.fspath(path)
    text = text if isinstance(text, str) else os.fsdecode(text)
    return text if text.isprintable() else repr(text)[1:-1]


class Interrupted(FaststError):
    """The user stopped a run (Ctrl-C) at a point it can resume from: `checkpoint`. The CLIs exit 130."""

    def __init__(self, message: str, path: str | os.PathLike | None = None,
                 checkpoint: str | os.PathLike | None = None) -> None:
        super().__init__(message, path)
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, at most `limit` characters, or its type's name when
    the message is empty: how a third-party error is quoted inside a one-line FaststError."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    line = text.splitlines()[0]
    if len(line) <= limit:
        return line
    head, space, _ = line[:limit + 1].rpartition(" ")  # cut at a word, marked; mid-word only in one long word
    return head.rstrip(",;:") + " …" if space and head else line[:limit] + "…"
