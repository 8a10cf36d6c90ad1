"""`gatys` command line: per-image style transfer by optimisation (Gatys et al.)."""
from __future__ import annotations

import sys
from collections.abc import Sequence

from fastst.cli import build_parser, run_cli
from fastst.openmp import bound_openmp_spin

COMMANDS = ("stylize", "sweep", "study")


def main(argv: Sequence[str] | None = None) -> int:
    bound_openmp_spin()  # before the subcommands import torch: see fastst.openmp
    parser = build_parser(prog="gatys", package="gatys.commands", commands=COMMANDS,
                          description="Neural style transfer by per-image optimisation (Gatys et al.).")
    return run_cli(parser, argv, "gatys")


if __name__ == "__main__":
    sys.exit(main())
