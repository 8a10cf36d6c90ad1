"""The CLI keeps large freed blocks in the heap: repeated big allocations stop page-faulting."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
import torch
from fastst.allocator import keep_freed_memory
applied = keep_freed_memory()
def faults():  # ten 64 MB tensors, over glibc's largest default mmap threshold, one after another
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        x = torch.ones(16 << 20)
        del x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults()  # the heap grows to its peak once
print(int(applied), faults())
"""


def _probe(keep: str) -> tuple[int, int]:
    env = {**os.environ, "FASTST_KEEP_HEAP": keep}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True).stdout
    applied, faults = out.split()
    return int(applied), int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_big_blocks_are_reused_instead_of_faulted_in_again():
    off_applied, off_faults = _probe("0")
    on_applied, on_faults = _probe("1")
    assert (off_applied, on_applied) == (0, 1)
    assert off_faults > 10 * 16000  # every 64 MB tensor page-faulted in again: ~16k pages each
    assert on_faults < off_faults / 20, (on_faults, off_faults)


def test_the_command_line_applies_it(capsys):
    from fastst import cli
    from fastst.allocator import keep_freed_memory

    keep_freed_memory.cache_clear()
    assert cli.main(["styles"]) == 0  # any command: the bundled model's styles
    assert keep_freed_memory.cache_info().currsize == 1
    assert "starry_night" in capsys.readouterr().out
