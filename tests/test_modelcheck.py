"""Model-file and checkpoint loading under random damage (a property test): any mutation of a valid
model dict or training checkpoint (dropped keys, wrong types, wrong shapes and dtypes, non-finite
values, huge declared sizes) either loads a model that computes finite images or raises FaststError:
never another exception, and never more memory than a small bound (enforced with an address-space
limit while loading)."""
from __future__ import annotations

import contextlib
import copy
import io
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastst.errors import FaststError
from fastst.modelcheck import MAX_WIDTH, expected_shapes, read_torch_file, validate_blob, validate_checkpoint
from fastst.modelfile import StyleInfo, load_model, save_model
from fastst.training import checkpoint_to_model, read_checkpoint
from fastst.transformer import TransformerNet

MEMORY_MARGIN = 1 << 30  # what loading one small damaged file may add to the address space


def _valid_blob(tmp: Path) -> dict[str, Any]:
    torch.manual_seed(0)
    net = TransformerNet(num_styles=2, residual_blocks=1, width=2)
    thumb = torch.zeros(3, 4, 4, dtype=torch.uint8)
    path = save_model(tmp / "ok.fst", net, [StyleInfo("a", "ab" * 32, thumb), StyleInfo("b")], {"steps_done": 3})
    return torch.load(path, weights_only=True)


def _valid_checkpoint() -> dict[str, Any]:
    torch.manual_seed(0)
    net = TransformerNet(num_styles=2, width=2)
    return {"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "global_step": 3,
            "pytorch-lightning_version": "2.6.6",
            "fastst": {"styles": [{"name": "a", "sha256": "", "thumbnail": None}, {"name": "b"}],
                       "config": {"width": 2, "image_size": 32}}}


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _valid_blob(tmp_path_factory.mktemp("valid"))


def _paths(obj: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every key path into nested dicts and lists (tensors and scalars are leaves)."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    else:
        return
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


def _get(obj: Any, path: tuple) -> Any:
    for k in path:
        obj = obj[k]
    return obj


HUGE = st.sampled_from([10 ** 6, 10 ** 9, 2 ** 31, 2 ** 63, -1, 0, MAX_WIDTH + 1])
JUNK = st.one_of(
    st.none(), st.booleans(), HUGE, st.integers(-(2 ** 70), 2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(lambda shape, dt: torch.zeros(shape, dtype=dt),
              st.lists(st.integers(0, 3), max_size=4).map(tuple),
              st.sampled_from([torch.float32, torch.float16, torch.int64, torch.bool, torch.uint8, torch.complex64])),
)


def _tensor_damage(t: torch.Tensor, op: str) -> Any:
    if op == "nan" and t.is_floating_point() and t.numel():
        t = t.clone()
        t.view(-1)[t.numel() // 2] = float("nan")
    elif op == "inf" and t.is_floating_point() and t.numel():
        t = torch.full_like(t, float("-inf"))
    elif op == "flatten":
        t = t.flatten()
    elif op == "cut" and t.dim():
        t = t[: max(0, t.shape[0] - 1)]
    elif op == "grow" and t.dim():
        t = torch.cat([t, t[:1]])
    elif op == "int":
        t = t.long()
    elif op == "half":
        t = t.half()
    elif op == "transpose" and t.dim() > 1:
        t = t.transpose(0, 1).contiguous()
    return t


@st.composite
def damaged(draw: st.DrawFn, valid: dict[str, Any]) -> dict[str, Any]:
    """The valid dict with 1 to 3 random mutations."""
    obj = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(obj))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _get(obj, path[:-1]), path[-1]
        value = parent[key]
        ops = ["drop", "junk", "huge"] + (["nan", "inf", "flatten", "cut", "grow", "int", "half", "transpose"]
                                         if isinstance(value, torch.Tensor) else [])
        op = draw(st.sampled_from(ops))
        if op == "drop":
            parent.pop(key)
        elif op == "junk":
            parent[key] = draw(JUNK)
        elif op == "huge":
            parent[key] = draw(HUGE)
        else:
            parent[key] = _tensor_damage(value, op)
    return obj


@contextlib.contextmanager
def memory_bound(margin: int = MEMORY_MARGIN) -> Iterator[None]:
    """Limit this process's address space to its current size plus `margin` for the block: an allocation
    beyond it fails (MemoryError or a RuntimeError) instead of succeeding through overcommit."""
    size = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + margin, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _save(obj: Any, path: Path) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    path.write_bytes(buf.getvalue())
    return path


def test_the_valid_files_load(blob, tmp_path):
    model = load_model(_save(blob, tmp_path / "m.fst"))
    assert model.style_names == ["a", "b"] and model.net.width == 2
    validate_checkpoint(_valid_checkpoint(), None)
    out = checkpoint_to_model(_save(_valid_checkpoint(), tmp_path / "c.ckpt"), tmp_path / "c.fst")
    assert load_model(out).style_names == ["a", "b"]


def test_expected_shapes_allocate_nothing():
    with memory_bound(256 << 20):  # 10^6 wide: 72 TB of weights if they were allocated
        shapes = expected_shapes(num_styles=4, residual_blocks=5, width=10 ** 6, output="sigmoid")
    assert shapes["down.0.conv.weight"] == (10 ** 6, 3, 9, 9)
    assert set(shapes) == set(TransformerNet(4, 5, 2).state_dict())


@pytest.mark.parametrize("field, value, needle", [
    ("architecture.width", 10 ** 6, "width"),
    ("architecture.num_styles", 10 ** 9, "num_styles"),
    ("architecture.residual_blocks", 10 ** 6, "residual_blocks"),
    ("architecture.width", 3, "shape"),  # plausible, but the weights are width 2
    ("styles", [{"name": "a"}], "2 styles"),
])
def test_declared_sizes_are_checked_against_bounds_and_weights(blob, field, value, needle):
    bad = copy.deepcopy(blob)
    *head, last = field.split(".")
    _get(bad, tuple(head))[last] = value
    with memory_bound(256 << 20), pytest.raises(FaststError, match=needle):
        validate_blob(bad, "m.fst")


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_damaged_model_file_loads_sanely_or_raises_fastst_error(blob, tmp_path, data):
    bad = data.draw(damaged(blob))
    path = _save(bad, tmp_path / "bad.fst")
    try:
        with memory_bound():
            model = load_model(path)
    except FaststError as e:
        assert "\n" not in str(e) and str(path) in str(e)
        return
    # it loaded: then it is a working model (a harmless mutation, e.g. of the config)
    out = model.net(torch.rand(1, 3, 16, 16), model.style_weights(0))
    assert out.shape == (1, 3, 16, 16) and bool(torch.isfinite(out).all())


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_damaged_checkpoint_converts_sanely_or_raises_fastst_error(tmp_path, data):
    bad = data.draw(damaged(_valid_checkpoint()))
    path = _save(bad, tmp_path / "bad.ckpt")
    out = tmp_path / "out.fst"
    out.unlink(missing_ok=True)
    try:
        with memory_bound():
            read_checkpoint(path)
            checkpoint_to_model(path, out)
    except FaststError as e:
        assert "\n" not in str(e) and str(path) in str(e)
        assert not out.exists()
        return
    model = load_model(out)
    assert bool(torch.isfinite(model.net(torch.rand(1, 3, 16, 16), model.style_weights(0))).all())


@pytest.mark.parametrize("data, needle", [
    (b"", "empty"), (b"hello", "not a"), (b"this is text", "not a"), (b"\x80\x02}q\x00.", "not a"),
])
def test_unreadable_bytes_are_one_line_errors(tmp_path, data, needle):
    path = tmp_path / "x.fst"
    path.write_bytes(data)
    with pytest.raises(FaststError, match=needle) as e:
        read_torch_file(path)
    assert "\n" not in str(e.value)


def test_a_bit_flip_in_the_weights_is_refused(tmp_path):
    """A flipped bit that leaves the weight finite would load and paint wrong; the stored checksum catches it."""
    torch.manual_seed(0)
    net = TransformerNet(num_styles=2, residual_blocks=1, width=2)
    data = bytearray(save_model(tmp_path / "ok.fst", net, [StyleInfo("a"), StyleInfo("b")]).read_bytes())
    at = data.find(net.state_dict()["down.0.conv.weight"].numpy().tobytes()[:16])
    assert at > 0  # torch.save stores tensors uncompressed
    data[at + 1] ^= 0x01  # a low mantissa bit: the value stays finite and close
    (tmp_path / "flipped.fst").write_bytes(data)
    with pytest.raises(FaststError, match="checksum: the file is damaged") as e:
        load_model(tmp_path / "flipped.fst")
    assert str(tmp_path / "flipped.fst") in str(e.value) and "\n" not in str(e.value)


def test_the_checksum_is_optional_and_typed(blob, tmp_path):
    old = copy.deepcopy(blob)
    del old["weights_sha256"]  # a file written before checksums: loads as before
    assert load_model(_save(old, tmp_path / "old.fst")).style_names == ["a", "b"]
    bad = copy.deepcopy(blob)
    bad["weights_sha256"] = 7
    with pytest.raises(FaststError, match="weights_sha256 must be text"):
        validate_blob(bad, "m.fst")


def test_the_checksum_holds_for_half_precision_files(tmp_path):
    torch.manual_seed(0)
    net = TransformerNet(num_styles=1, residual_blocks=1, width=2)
    model = load_model(save_model(tmp_path / "h.fst", net, [StyleInfo("a")], half=True))
    torch.testing.assert_close(model.net.down[0].conv.weight, net.down[0].conv.weight.half().float())
