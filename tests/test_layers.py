"""The import layers hold, and the tool that checks them catches a back-edge: `lint-imports` (import-linter,
contracts in pyproject.toml) passes on this tree and fails on a temporary copy into which one forbidden
import was written. The layers: the library core (fastst without its command-line layer), gatys and export
on top of it, the command-line layer (fastst.cli, fastst.commands, gatys.cli, ...) on top of everything."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fastst", "gatys", "export", "datasets")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """Run import-linter on the tree at `cwd` (it puts `cwd` first on sys.path, so that copy is analysed)."""
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.exists(), f"{exe} missing: import-linter is in the test extra (pip install -e '.[test]')"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(exe), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _module_file(root: Path, module: str) -> Path:
    """The source file of a dotted module in a tree: a.b -> a/b.py, or a/b/__init__.py for a package."""
    base = root.joinpath(*module.split("."))
    path = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
    assert path.exists(), f"no module {module} under {root}"
    return path


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    """The packages and the contracts, copied; each test below adds one import to a fresh copy of it."""
    base = tmp_path_factory.mktemp("layers")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, base / name, ignore=shutil.ignore_patterns("__pycache__", "*.fst", "*.jpg"))
    shutil.copy2(ROOT / "pyproject.toml", base / "pyproject.toml")
    return base


def test_this_tree_keeps_every_contract():
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "BROKEN" not in run.stdout and "Contracts: 3 kept, 0 broken." in run.stdout, run.stdout[-2000:]


@pytest.mark.parametrize("importer, statement, edge", [
    ("fastst.training", "import gatys", "fastst.training -> gatys"),            # the core reaching up to gatys
    ("fastst.transformer", "import export.common", "fastst.transformer -> export.common"),
    ("fastst.losses", "from fastst import cli", "fastst.losses -> fastst.cli"),  # the core reaching the CLI
    ("gatys.optimize", "import fastst.commands", "gatys.optimize -> fastst.commands"),
    ("export.onnx_export", "import gatys", "export.onnx_export -> gatys"),
    ("fastst.images", "import datasets.coco", "fastst.images -> datasets.coco"),
])
def test_a_back_edge_breaks_a_contract(tree_copy, tmp_path, importer, statement, edge):
    copy = tmp_path / "tree"
    shutil.copytree(tree_copy, copy)
    target = _module_file(copy, importer)
    with target.open("a", encoding="utf-8") as f:
        f.write(f"\n{statement}  # a deliberate back-edge\n")
    run = _lint_imports(copy)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    assert "BROKEN" in run.stdout and edge in run.stdout, run.stdout[-3000:]
