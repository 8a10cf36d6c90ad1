"""`fastst export`: not implemented yet."""
from __future__ import annotations

import argparse

from ..errors import FaststError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="(not implemented yet)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    raise FaststError("'fastst export' is not implemented yet")
