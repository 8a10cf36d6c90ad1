"""A stopped and resumed training run equals the uninterrupted run bit for bit (weights and logged
losses), whether it was stopped by a shorter run, by Ctrl-C or by SIGKILL between checkpoints, and
across the data's epoch boundaries (4 photos at batch 2: a new permutation every 2 steps). Runs go
through the real CLI (forked from a warm interpreter, tests/cli_fork.py)."""
from __future__ import annotations

import shlex
import signal
from pathlib import Path

import pytest
import torch

from cli_fork import CliRunner
from conftest import write_training_inputs
from fastst.data import ResumableSampler
from fastst.training.metrics import read_metrics

STEPS = 5
RUN = ("train --style style.png --data photos --out {out}.fst --log-dir {out}_logs --image-size 32 --batch-size 2 "
       "--width 4 --log-every 1 --preview-every 0 --seed 3")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_training_inputs(tmp_path_factory.mktemp("resume"), widths=(48, 52, 56, 60))


def train(cli: CliRunner, work: Path, out: str, extra: str = "", **signal_options) -> tuple[int, str]:
    r = cli.run("fastst", shlex.split(RUN.format(out=out) + " " + extra), cwd=work, **signal_options)
    return r.rc, r.stderr


def weights(work: Path, out: str) -> dict[str, torch.Tensor]:
    return torch.load(work / f"{out}.fst", weights_only=True)["state_dict"]


def losses(work: Path, out: str) -> dict[int, str]:
    """{step: logged training loss, as written} over every leg of a run."""
    return {int(r["step"]): r["train/loss"] for r in read_metrics(work / f"{out}_logs" / "metrics.csv")
            if r.get("train/loss")}


@pytest.fixture(scope="module")
def uninterrupted(cli: CliRunner, work: Path) -> str:
    rc, err = train(cli, work, "full", f"--steps {STEPS} --checkpoint-every 1")
    assert rc == 0, err[-2000:]
    assert sorted(losses(work, "full")) == list(range(STEPS))  # one loss per step, logged at steps 0..4
    return "full"


def assert_same_run(work: Path, a: str, b: str, from_step: int = 0) -> None:
    wa, wb = weights(work, a), weights(work, b)
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[0]}"
    la = {s: v for s, v in losses(work, a).items() if s >= from_step}
    lb = {s: v for s, v in losses(work, b).items() if s >= from_step}
    assert la == lb and la, (la, lb)


def test_two_uninterrupted_runs_are_identical(cli, work, uninterrupted):
    rc, err = train(cli, work, "again", f"--steps {STEPS} --checkpoint-every 1")
    assert rc == 0, err[-2000:]
    assert_same_run(work, uninterrupted, "again")


def test_a_run_resumed_after_one_step_equals_the_uninterrupted_run(cli, work, uninterrupted):
    rc, err = train(cli, work, "short", "--steps 1 --checkpoint-every 1")
    assert rc == 0, err[-2000:]
    # the shorter run finished and wrote short.fst, which the longer one replaces
    rc, err = train(cli, work, "short", f"--steps {STEPS} --checkpoint-every 1 --overwrite "
                                        "--resume short_logs/checkpoints/last.ckpt")
    assert rc == 0, err[-2000:]
    assert "Warning" not in err and "resumable" not in err, err[-1000:]  # Lightning's 'not resumable' warning
    assert_same_run(work, uninterrupted, "short")


def test_ctrl_c_stops_at_a_step_boundary_and_the_resumed_run_is_identical(cli, work, uninterrupted):
    rc, err = train(cli, work, "ctrlc", f"--steps {STEPS} --checkpoint-every 1",
                    signal_when="ctrlc_logs/checkpoints/epoch=0-step=1.ckpt", signal_number=signal.SIGINT)
    last = "ctrlc_logs/checkpoints/last.ckpt"
    assert rc == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == f"fastst: interrupted; resume with --resume {last}"
    assert "Traceback" not in err and not (work / "ctrlc.fst").exists()
    step = torch.load(work / last, weights_only=True)["global_step"]
    assert 1 <= step < STEPS
    rc, err = train(cli, work, "ctrlc", f"--steps {STEPS} --checkpoint-every 1 --resume {last}")
    assert rc == 0, err[-2000:]
    assert_same_run(work, uninterrupted, "ctrlc")


def test_sigkill_between_checkpoints_then_resume_equals_the_uninterrupted_run(cli, work, uninterrupted):
    # checkpoints at steps 2 and 4; the kill lands after step 2's last.ckpt (renamed into place whole), during a
    # later step
    rc, err = train(cli, work, "killed", f"--steps {STEPS} --checkpoint-every 2",
                    signal_when="killed_logs/checkpoints/last.ckpt", signal_number=signal.SIGKILL, signal_delay=0.05)
    assert rc == -signal.SIGKILL, err[-2000:]
    ckpts = work / "killed_logs" / "checkpoints"
    step = torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"]  # whole, never truncated
    assert step in (2, 4)
    rc, err = train(cli, work, "killed", f"--steps {STEPS} --checkpoint-every 2 "
                                         f"--resume killed_logs/checkpoints/last.ckpt")
    assert rc == 0, err[-2000:]
    # SIGKILL gives the CSV logger no chance to write the first leg's losses: compare from the resume on
    assert_same_run(work, uninterrupted, "killed", from_step=step)


def test_the_sampler_has_the_whole_runs_length_wherever_it_starts():
    """Lightning counts a resumed run's earlier batches into its epoch: a sampler as long as what is left
    ended the epoch early and started the next from the resume point again (repeating data)."""
    full = list(ResumableSampler(4, total=12, seed=1))
    resumed = ResumableSampler(4, total=12, seed=1, start=6)
    assert len(resumed) == len(full) == 12
    assert list(resumed) == full[6:]
    assert len({i % 4 for i in full[:4]}) == 4 and full[:4] != full[4:8]  # a new permutation every pass


def test_resuming_with_another_batch_size_says_the_order_differs(cli, work):
    rc, err = train(cli, work, "batch", "--steps 1 --checkpoint-every 1")
    assert rc == 0, err[-2000:]
    rc, err = train(cli, work, "batch", "--steps 3 --checkpoint-every 1 --overwrite "
                                        "--resume batch_logs/checkpoints/last.ckpt "
                                        "--batch-size 3")
    assert rc == 0, err[-2000:]
    assert "samples_per_step 2 -> 3" in err and "data order differs" in err, err[-1000:]


def test_resuming_with_another_checkpoint_interval_keeps_last_ckpt_current(cli, work):
    """Lightning keys ModelCheckpoint's saved state by its interval: resumed with another
    --checkpoint-every it warned with its source line and wrote last-v1.ckpt, leaving last.ckpt behind."""
    rc, err = train(cli, work, "interval", "--steps 2 --checkpoint-every 2")
    assert rc == 0, err[-2000:]
    rc, err = train(cli, work, "interval", "--steps 6 --checkpoint-every 3 --overwrite "
                                           "--resume interval_logs/checkpoints/last.ckpt")
    assert rc == 0, err[-2000:]
    assert "warning" not in err.lower() and ".py:" not in err, err[-2000:]
    names = sorted(p.name for p in (work / "interval_logs" / "checkpoints").iterdir())
    assert "last-v1.ckpt" not in names, names
    last = torch.load(work / "interval_logs" / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 6


def test_a_checkpoint_loads_outside_a_run(cli, work, monkeypatch):
    """The module's on_load_checkpoint also runs in load_from_checkpoint, where no Trainer is attached."""
    from fastst.training.module import StyleTransferModule

    rc, err = train(cli, work, "loadable", "--steps 1 --checkpoint-every 1")
    assert rc == 0, err[-2000:]
    ckpt = work / "loadable_logs" / "checkpoints" / "last.ckpt"
    monkeypatch.chdir(work)  # the run's style image is named relative to it
    module = StyleTransferModule.load_from_checkpoint(ckpt, map_location="cpu")
    assert module.style_names == ["style"]
