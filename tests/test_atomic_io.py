"""Atomic checkpoint writes (a kill or a full disk never leaves a truncated checkpoint) and the path
guards commands run first (no output onto an input, through symlinks and hard links; output folders
that accept files, read-only mounts included)."""
from __future__ import annotations

import os
import random
import signal
import time

import pytest
import torch

from cli_fork import _mount_private
from fastst.atomic import save_torch
from fastst.checkpoint_io import AtomicCheckpointIO, nonfinite_tensor
from fastst.errors import FaststError
from fastst.paths import check_not_inputs, check_writable_folder, inside, same_file


def _in_child(fn) -> int:  # noqa: ANN001
    """Run fn() in a forked child; its return value (a small int) is the exit status. 77: could not mount."""
    pid = os.fork()
    if pid == 0:
        code = 1
        torch.set_num_threads(1)  # the parent's OpenMP threads do not exist here: never wait for them
        try:
            code = int(fn())
        except BaseException:  # noqa: BLE001
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)


def test_a_kill_during_a_checkpoint_write_never_leaves_a_truncated_file(tmp_path):
    target = tmp_path / "last.ckpt"
    big = {"state_dict": {"w": torch.arange(6_000_000, dtype=torch.float32)}, "step": 0}
    save_torch(big, target)
    rng = random.Random(0)
    kills = 0
    for _attempt in range(6):
        pid = os.fork()
        if pid == 0:
            torch.set_num_threads(1)
            try:
                for step in range(1, 1000):
                    save_torch({"state_dict": big["state_dict"], "step": step}, target)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        kills += os.WIFSIGNALED(status)
        blob = torch.load(target, weights_only=True)  # whole: the old or a new checkpoint
        assert torch.equal(blob["state_dict"]["w"], big["state_dict"]["w"])
    assert kills >= 4
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert all(name.startswith(".last.ckpt.") and name.endswith(".part.ckpt") for name in leftovers), leftovers


def test_a_full_disk_keeps_the_old_checkpoint_and_leaves_no_part_file(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()

    def run() -> int:
        if _mount_private([{"path": str(disk), "size": "256k"}]):
            return 77
        io = AtomicCheckpointIO()
        io.save_checkpoint({"state_dict": {"w": torch.ones(1000)}}, disk / "last.ckpt")
        try:
            io.save_checkpoint({"state_dict": {"w": torch.ones(200_000)}}, disk / "last.ckpt")  # 800 kB
        except FaststError as e:
            if "No space left" not in str(e) or "last.ckpt" not in str(e):
                return 3
        else:
            return 4
        if sorted(p.name for p in disk.iterdir()) != ["last.ckpt"]:
            return 5
        return 10 if torch.load(disk / "last.ckpt", weights_only=True)["state_dict"]["w"].numel() == 1000 else 6

    code = _in_child(run)
    if code == 77:
        pytest.skip("private tmpfs mounts are not allowed here")
    assert code == 10


def test_non_finite_weights_are_never_written(tmp_path):
    io = AtomicCheckpointIO()
    good = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"net.w": torch.ones(3)}}, good)
    assert nonfinite_tensor({"a": {"b": torch.tensor([1.0, float("nan")])}}) == "a.b"
    with pytest.raises(FaststError, match="NaN or infinity"):
        io.save_checkpoint({"state_dict": {"net.w": torch.tensor([1.0, float("inf")])}}, good)
    assert torch.load(good, weights_only=True)["state_dict"]["net.w"].tolist() == [1.0, 1.0, 1.0]


def test_outputs_that_are_inputs_are_refused_through_links(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"x")
    (tmp_path / "link.png").symlink_to(photo)
    os.link(photo, tmp_path / "hard.png")
    data = tmp_path / "photos"
    data.mkdir()
    assert same_file(tmp_path / "link.png", photo) and same_file(tmp_path / "hard.png", photo)
    assert not same_file(tmp_path / "other.png", photo)
    assert inside(data / "logs" / "a.png", data) and not inside(tmp_path / "photos2", data)
    (tmp_path / "alias").symlink_to(data)  # the data folder under another name
    assert inside(tmp_path / "alias" / "logs", data)
    with pytest.raises(FaststError, match="inside the input folder"):
        check_not_inputs([tmp_path / "alias" / "logs" / "m.fst"], [], [data])
    for out in ("link.png", "hard.png", "photo.png", "./sub/../photo.png"):
        with pytest.raises(FaststError, match="is also an input"):
            check_not_inputs([tmp_path / out], [photo])
    with pytest.raises(FaststError, match="inside the input folder"):
        check_not_inputs([tmp_path / "photos" / "logs"], [], [data])
    check_not_inputs([tmp_path / "out.png", None], [photo, None], [data])  # fine


def test_output_folders_must_accept_files(tmp_path):
    check_writable_folder(tmp_path)
    check_writable_folder(tmp_path / "new" / "deeper", create=True)
    assert not (tmp_path / "new").exists()
    with pytest.raises(FaststError, match="does not exist"):
        check_writable_folder(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FaststError, match="is a file"):
        check_writable_folder(tmp_path / "file" / "sub", create=True)
    ro = tmp_path / "ro"
    ro.mkdir()

    def run() -> int:
        if _mount_private([{"path": str(ro), "ro": True}]):
            return 77
        try:
            check_writable_folder(ro / "logs", create=True)
        except FaststError as e:
            return 10 if "read-only" in str(e) else 3
        return 4

    code = _in_child(run)
    if code == 77:
        pytest.skip("private tmpfs mounts are not allowed here")
    assert code == 10
