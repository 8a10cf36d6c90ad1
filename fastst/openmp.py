"""How long torch's OpenMP threads spin before they sleep, set before torch loads so that a fastst
process shares the CPU with other work.

PyTorch's Linux wheels bundle GNU libgomp, which reads its settings once, when torch loads it. Its
default is to busy-wait 300,000 spins (about 10 ms on an AVX512-BF16 EPYC) after every parallel
region and at every barrier. Alone on a machine that costs nothing; beside another busy process the
spinning threads burn the cores the other one needs: two 512² inference processes on 2 cores ran
6× slower each instead of 2× (docs/performance.md). `OMP_WAIT_POLICY=PASSIVE` (no spinning) fixes
the pair but slows a lone process 5-10 %, since every region then wakes its threads from sleep. A
bounded spin keeps both: threads still catch the next region of the same forward pass (tens of
microseconds away) but sleep within about 0.5 ms when nothing comes.

The `fastst` and `gatys` commands call `bound_openmp_spin()` first thing; library users who import
torch themselves set `GOMP_SPINCOUNT` (or `OMP_WAIT_POLICY`) in the environment before that. This
module must not import torch.
"""
from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

SPIN_VARIABLE = "GOMP_SPINCOUNT"
#: About 0.3-0.6 ms of spinning (a pause instruction is 40-140 cycles), against libgomp's 300,000.
DEFAULT_SPINCOUNT = 10_000
#: Settings a user may have made: any of them means the choice is theirs (GOMP_SPINCOUNT would
#: override OMP_WAIT_POLICY=ACTIVE or PASSIVE, so neither is touched when either is set).
USER_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def bound_openmp_spin(environ: MutableMapping[str, str] | None = None) -> bool:
    """Set GOMP_SPINCOUNT to DEFAULT_SPINCOUNT in `environ` (default: this process's environment,
    which child processes inherit) unless the user set GOMP_SPINCOUNT or OMP_WAIT_POLICY, or torch
    is already loaded in this process (its OpenMP read the environment then; changing it now would
    only surprise the processes this one starts). Returns True if it set the value."""
    env = os.environ if environ is None else environ
    if any(name in env for name in USER_SETTINGS):
        return False
    if environ is None and "torch" in sys.modules:
        return False
    env[SPIN_VARIABLE] = str(DEFAULT_SPINCOUNT)
    return True
