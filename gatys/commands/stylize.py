"""`gatys stylize`: not implemented yet."""
from __future__ import annotations

import argparse

from fastst.errors import FaststError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("stylize", help="(not implemented yet)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    raise FaststError("'gatys stylize' is not implemented yet")
