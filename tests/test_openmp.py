"""The commands bound OpenMP's spinning before torch loads, and a user's own setting wins. Each case
runs in a fresh interpreter: libgomp reads its environment once, when torch loads it, and reports
what it read when OMP_DISPLAY_ENV=VERBOSE."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastst.openmp import DEFAULT_SPINCOUNT, bound_openmp_spin

REPO = Path(__file__).resolve().parents[1]

# The child runs a command's main() in-process (the console scripts call exactly this), then loads
# torch if the command did not; it prints the environment torch met and whether the command loaded it.
CHILD = """
import os, sys
from {module} import main
try:
    main({argv!r})
except SystemExit:
    pass
loaded_by_command = "torch" in sys.modules
import torch
torch.ones(8).sum()
print("SEEN", os.environ.get("GOMP_SPINCOUNT"), os.environ.get("OMP_WAIT_POLICY"), loaded_by_command)
"""


def run_child(module: str, argv: list[str], env_extra: dict[str, str], tmp_path: Path) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(PYTHONPATH=str(REPO), OMP_DISPLAY_ENV="VERBOSE", **env_extra)
    r = subprocess.run([sys.executable, "-c", CHILD.format(module=module, argv=argv)], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    seen = next(line for line in r.stdout.splitlines() if line.startswith("SEEN"))
    return seen, r.stderr


def libgomp_spincount(stderr: str) -> str:
    """The spin count libgomp parsed, from its OMP_DISPLAY_ENV report."""
    match = re.search(r"GOMP_SPINCOUNT = '(\w+)'", stderr)
    assert match, stderr[-2000:]
    return match.group(1)


def test_importing_the_command_modules_does_not_load_torch():
    code = "import sys, fastst.cli, gatys.cli, fastst.openmp; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


@pytest.mark.parametrize("module,argv", [("fastst.cli", ["styles"]), ("gatys.cli", ["stylize", "--help"])])
def test_commands_bound_the_spin_before_torch_loads(tmp_path, module, argv):
    seen, stderr = run_child(module, argv, {}, tmp_path)
    assert seen.split()[1:3] == [str(DEFAULT_SPINCOUNT), "None"]
    assert libgomp_spincount(stderr) == str(DEFAULT_SPINCOUNT)  # what torch's OpenMP runs with


def test_the_fastst_command_loads_torch_after_setting_it(tmp_path):
    """`fastst styles` loads torch itself (the bundled model), so the value was in place before."""
    seen, stderr = run_child("fastst.cli", ["styles"], {}, tmp_path)
    assert seen.split()[3] == "True" and libgomp_spincount(stderr) == str(DEFAULT_SPINCOUNT)


@pytest.mark.parametrize("user", [{"GOMP_SPINCOUNT": "777"}, {"OMP_WAIT_POLICY": "ACTIVE"},
                                  {"OMP_WAIT_POLICY": "PASSIVE"}])
def test_a_users_own_setting_wins(tmp_path, user):
    seen, stderr = run_child("fastst.cli", ["styles"], user, tmp_path)
    _, spin, policy, _ = seen.split()
    assert spin == user.get("GOMP_SPINCOUNT", "None") and policy == user.get("OMP_WAIT_POLICY", "None")
    expected = {"777": "777", "ACTIVE": "30000000000", "PASSIVE": "0"}[next(iter(user.values()))]
    assert libgomp_spincount(stderr) == expected


def test_bound_openmp_spin_on_a_given_environment():
    env: dict[str, str] = {}
    assert bound_openmp_spin(env) and env == {"GOMP_SPINCOUNT": str(DEFAULT_SPINCOUNT)}
    mine = {"OMP_WAIT_POLICY": "active"}
    assert not bound_openmp_spin(mine) and mine == {"OMP_WAIT_POLICY": "active"}
    # in this process torch is loaded already: too late for its OpenMP, so the environment is left alone
    assert "torch" in sys.modules or __import__("torch")
    before = dict(os.environ)
    assert not bound_openmp_spin() and dict(os.environ) == before
