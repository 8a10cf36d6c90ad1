"""`fastst` command line: thin argparse layer over the library, and the one place that ties in the
layers built on it (`export`, `gatys`). Each subcommand lives in fastst/commands/<name>.py with
add_parser() and run(); commands/demo.py is the `make demo` program (`python -m fastst.commands.demo`).
FaststError becomes one line and exit 2. Nothing here imports torch: `main` bounds OpenMP's spinning
first (fastst.openmp), then the subcommands load torch."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from .allocator import keep_freed_memory
from .errors import FaststError, Interrupted, first_line
from .openmp import bound_openmp_spin
from .version import fastst_version

COMMANDS = ("train", "infer", "export", "convert", "styles", "serve")


def build_parser(prog: str = "fastst", package: str = "fastst.commands", commands: Sequence[str] = COMMANDS,
                 description: str = "Real-time neural style transfer: train, stylize, export.") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {fastst_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in commands:
        importlib.import_module(f"{package}.{name}").add_parser(sub)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted, so warnings of a second in-process
    run (tests, notebooks) do not go to the first run's, possibly closed, stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, `docker stop`, systemd), raised where the program is, as Ctrl-C's
    KeyboardInterrupt is: the same clean-up runs (an atomic write removes its temporary file)."""


_terminated: list[bool] = [False]  # whether the run now ending got SIGTERM (a resumable stop exits 143 then)


def _raise_terminated(signum: int, frame: object) -> None:  # noqa: ARG001 - a signal handler's signature
    _terminated[0] = True
    raise Terminated


def _stop_on_sigterm() -> bool:
    """Turn SIGTERM into Terminated, unless a handler is already set (the caller's choice) or this is
    not the main thread (where Python allows no handler). True if it did."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_terminated)
        return True
    return False


def _out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation that failed (torch's CPU allocator, CUDA, Python), by type name
    and message: this module does not import torch."""
    text = str(error)
    return isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError" or (
        isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower()))


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None, prog: str) -> int:
    """Parse, dispatch to args.func, and turn user errors into one line on stderr with exit code 2."""
    args = parser.parse_args(argv)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(f"{prog}: warning: %(message)s"))
    for name in ("fastst", "gatys", "export"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
            logger.setLevel(logging.WARNING)
            logger.propagate = False
    func: Callable[[argparse.Namespace], int | None] = args.func
    keep_freed_memory()
    installed = _stop_on_sigterm()
    _terminated[0] = False
    try:
        return int(func(args) or 0)
    except Interrupted as e:  # stopped by the user (Ctrl-C or SIGTERM) where the run can resume
        print(f"{prog}: {e}", file=sys.stderr)
        return 128 + signal.SIGTERM if _terminated[0] else 130
    except BrokenPipeError:  # the reader went away (`fastst styles | head -1`): stop quietly, as `ls` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit flush fails silently
        return 128 + signal.SIGPIPE
    except FaststError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:
        if not _out_of_memory(e):
            raise
        print(f"{prog}: error: not enough memory for this run ({first_line(e, 100)}); try smaller images or sizes, "
              "a smaller batch, or --tile", file=sys.stderr)
        return 2
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        if installed:  # an in-process caller (a test, a notebook) gets its default back
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    bound_openmp_spin()  # before the subcommands import torch: see fastst.openmp
    return run_cli(build_parser(), argv, "fastst")


if __name__ == "__main__":
    sys.exit(main())
