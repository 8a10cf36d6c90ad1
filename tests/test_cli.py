"""The two command lines: every --help works through the installed console scripts and `python -m`,
and user errors become one `prog: error: ...` line with exit status 2 and no traceback."""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gatys.cli
from fastst import cli
from fastst.errors import FaststError

FASTST_COMMANDS = tuple(cli.COMMANDS)
GATYS_COMMANDS = tuple(gatys.cli.COMMANDS)
REPO = Path(__file__).resolve().parents[1]


def script(name: str) -> str:
    """The console script installed beside this interpreter (the project's venv), else one on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"console script {name!r} is not installed (pip install -e .)")
    return found


def run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "100"}
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, cwd=REPO, env=env)


def test_expected_commands_are_registered():
    assert {"train", "infer", "export", "convert", "styles"} <= set(FASTST_COMMANDS)
    assert {"stylize", "sweep"} <= set(GATYS_COMMANDS)


@pytest.mark.parametrize("prog, commands", [("fastst", FASTST_COMMANDS), ("gatys", GATYS_COMMANDS)])
def test_top_level_help(prog, commands):
    r = run(script(prog), "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: {prog}")
    for name in commands:
        assert name in r.stdout
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("prog, command", [("fastst", c) for c in FASTST_COMMANDS]
                         + [("gatys", c) for c in GATYS_COMMANDS])
def test_subcommand_help(prog, command):
    r = run(script(prog), command, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: {prog} {command}")
    assert "-h, --help" in r.stdout
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("module, commands", [("fastst", FASTST_COMMANDS), ("gatys", GATYS_COMMANDS)])
def test_python_dash_m(module, commands):
    r = run(sys.executable, "-m", module, "--help")
    assert r.returncode == 0, r.stderr
    assert all(name in r.stdout for name in commands)


def test_version():
    r = run(script("fastst"), "--version")
    assert r.returncode == 0
    from importlib.metadata import version
    assert r.stdout.strip() == f"fastst {version('fastst')}"


@pytest.mark.parametrize("argv", [[], ["no-such-command"], ["--no-such-flag"]])
def test_usage_errors_exit_2_without_traceback(argv):
    r = run(script("fastst"), *argv)
    assert r.returncode == 2
    assert "usage: fastst" in r.stderr and "fastst: error:" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


# ---------------------------------------------------------------- dispatch and error handling (in-process)


@pytest.fixture(autouse=True)
def restore_loggers():
    """run_cli configures the package loggers; undo that so later tests' log capture is unaffected."""
    names = ("fastst", "gatys", "export")
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level, logging.getLogger(n).propagate)
             for n in names}
    yield
    for n, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(n)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def _parser(func) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tool")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("go")
    p.add_argument("value", type=int)
    p.set_defaults(func=func)
    return parser


def test_run_cli_returns_the_command_status():
    seen = []
    assert cli.run_cli(_parser(lambda a: seen.append(a.value)), ["go", "7"], "tool") == 0
    assert seen == [7]
    assert cli.run_cli(_parser(lambda a: 3), ["go", "1"], "tool") == 3


def test_fastst_error_becomes_one_line_and_exit_2(capsys, tmp_path):
    bad = tmp_path / "photo.jpg"

    def fail(args):
        raise FaststError("corrupt or truncated image\n(details on a second line)", bad)

    assert cli.run_cli(_parser(fail), ["go", "1"], "tool") == 2
    err = capsys.readouterr().err
    assert err == f"tool: error: {bad}: corrupt or truncated image (details on a second line)\n"


def test_interrupt_exits_130(capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    assert cli.run_cli(_parser(interrupted), ["go", "1"], "tool") == 130
    assert capsys.readouterr().err == "tool: interrupted\n"


def test_a_failed_allocation_is_one_line_and_other_runtime_errors_are_not_hidden(capsys):
    import torch

    def too_big(args):
        torch.empty(1 << 62, dtype=torch.uint8)  # 4 EiB: torch's CPU allocator refuses at once

    assert cli.run_cli(_parser(too_big), ["go", "1"], "tool") == 2
    err = capsys.readouterr().err
    assert err.startswith("tool: error: not enough memory for this run (") and err.count("\n") == 1, err

    def other(args):
        raise RuntimeError("shapes do not match")

    with pytest.raises(RuntimeError, match="shapes do not match"):
        cli.run_cli(_parser(other), ["go", "1"], "tool")


def test_sigterm_becomes_exit_143_and_the_default_handler_comes_back(capsys):
    import signal

    def killed(args):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the handler run_cli installed
        raise AssertionError("not reached")

    assert cli.run_cli(_parser(killed), ["go", "1"], "tool") == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "tool: terminated\n"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_resumable_stop_by_sigterm_exits_143_and_by_ctrl_c_130(capsys):
    """A training run stopped at a step boundary raises Interrupted either way; the exit code says which."""
    import signal

    from fastst.errors import Interrupted

    def stopped(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:  # what Lightning catches before it stops at the step's end
            raise Interrupted("interrupted after step 3; the run resumes from last.ckpt") from None

    def ctrl_c(args):
        raise Interrupted("interrupted after step 3; the run resumes from last.ckpt")

    assert cli.run_cli(_parser(stopped), ["go", "1"], "tool") == 128 + signal.SIGTERM
    assert cli.run_cli(_parser(ctrl_c), ["go", "1"], "tool") == 130  # the flag of the run before is reset
    assert capsys.readouterr().err.count("tool: interrupted after step 3") == 2


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """`fastst styles | head -1`: no BrokenPipeError traceback, SIGPIPE's exit status."""
    import signal

    # `true` exits at once, long before the command has imported torch and printed: the write fails
    done = subprocess.run(["bash", "-c", f"{sys.executable} -m fastst styles | true; echo ${{PIPESTATUS[0]}}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stderr == "" and done.stdout.strip() == str(128 + signal.SIGPIPE), (done.stdout, done.stderr)


def test_programming_errors_are_not_hidden():
    def bug(args):
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):  # only user errors are turned into one-line messages
        cli.run_cli(_parser(bug), ["go", "1"], "tool")


def test_fastst_error_message_format(tmp_path):
    e = FaststError("line one\n  line two\ttabbed", tmp_path / "x.png")
    assert str(e) == f"{tmp_path / 'x.png'}: line one line two tabbed"
    assert e.path == str(tmp_path / "x.png")
    assert str(FaststError("no file here")) == "no file here"
