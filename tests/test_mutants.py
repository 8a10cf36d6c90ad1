"""tools/mutants.py's list stays current: every mutant's snippet occurs exactly once in its file, so a
change to the code cannot turn a mutant into a silent no-op (the mutation run itself is slow and not here)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_tool():
    spec = importlib.util.spec_from_file_location("mutants", ROOT / "tools" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mutants", module)  # dataclasses look their module up there
    spec.loader.exec_module(sys.modules["mutants"])
    return sys.modules["mutants"]


def test_every_mutant_snippet_occurs_once_in_its_file():
    tool = load_tool()
    names = [m.name for m in tool.MUTANTS]
    assert len(names) == len(set(names))
    for m in tool.MUTANTS:
        text = (ROOT / m.file).read_text()
        assert text.count(m.original) == 1, f"{m.name}: snippet not found once in {m.file}: {m.original!r}"
        assert m.replacement != m.original and m.tests and all(t.startswith("tests/test_") for t in m.tests), m.name
    # at least one mutant in every core module the list is meant to cover
    covered = {m.file for m in tool.MUTANTS}
    for module in ("fastst/transformer.py", "fastst/modelfile.py", "fastst/losses.py", "fastst/lossnet.py",
                   "fastst/training/module.py", "fastst/data.py", "fastst/inference/stylizer.py",
                   "fastst/inference/tiling.py", "fastst/inference/planning.py", "fastst/inference/video.py",
                   "fastst/images.py", "export/onnx_export.py", "export/coreml_export.py", "gatys/optimize.py"):
        assert module in covered, module
    assert any(m.file.startswith("fastst/objectives/") for m in tool.MUTANTS)


def test_apply_changes_only_the_copy(tmp_path):
    tool = load_tool()
    m = tool.MUTANTS[0]
    (tmp_path / m.file).parent.mkdir(parents=True)
    source = (ROOT / m.file).read_text()
    (tmp_path / m.file).write_text(source)
    assert tool.apply(tmp_path, m) == source
    assert m.replacement in (tmp_path / m.file).read_text() and (ROOT / m.file).read_text() == source
    assert tool.select(["residual-*"]) == [m]
