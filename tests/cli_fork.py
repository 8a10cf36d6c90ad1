"""A fork server for CLI tests: it imports torch, torchvision and Lightning once, then runs each
request (`python -m MODULE ARGS` with a cwd, env, optional private tmpfs mounts and an optional
signal) in a forked child exactly as the interpreter would: argv and stdio set, the module run as
__main__, an uncaught exception printed as a traceback with exit 1, an uncaught KeyboardInterrupt
ending the process by SIGINT. A case then costs a fork instead of ~10 s of imports.

Protocol: one JSON request per stdin line, one JSON reply per stdout line (see `run_request`).
`CliRunner` is the client; FASTST_TEST_SUBPROCESS=1 makes it start a fresh interpreter per case
instead, to check that the two agree."""
from __future__ import annotations

import ctypes
import glob
import json
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MEMORY_LIMIT = 8 << 30  # address space of a case: a crafted file that makes the CLI allocate terabytes fails fast
SKIP_CODE = 77  # the child could not set up a mount (not root, no mount namespaces): the case is skipped
CLONE_NEWNS, MS_RDONLY, MS_REC, MS_PRIVATE = 0x00020000, 1, 16384, 1 << 18


def _mount_private(mounts: list[dict[str, Any]]) -> str | None:
    """In a new mount namespace, mount a tmpfs of `size` (read-only if `ro`) on each `path`; None on
    success, else why not. The mounts vanish with the process; nothing outside it sees them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        return f"unshare: {os.strerror(ctypes.get_errno())}"
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return f"mount --make-rprivate /: {os.strerror(ctypes.get_errno())}"
    for m in mounts:
        opts = f"size={m.get('size', '64k')}".encode()
        flags = MS_RDONLY if m.get("ro") else 0
        if libc.mount(b"tmpfs", os.fsencode(m["path"]), b"tmpfs", flags, opts) != 0:
            return f"mount tmpfs on {m['path']}: {os.strerror(ctypes.get_errno())}"
        for name, data in (m.get("files") or {}).items():  # files to put on it (a read-only one gets none)
            Path(m["path"], name).write_bytes(data.encode("latin-1"))
    return None


def _list_mounts(mounts: list[dict[str, Any]], listing: str) -> None:
    found = []
    for m in mounts:
        for dirpath, _, filenames in os.walk(m["path"]):
            found += [os.path.join(dirpath, f) for f in filenames]
    Path(listing).write_text(json.dumps(found))


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, resource.getrlimit(resource.RLIMIT_AS)[1]))


def _child(req: dict[str, Any], out: int, err: int) -> None:
    """In the forked child: become `python -m MODULE ARGV` and never return."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own process group: the server can signal it and any workers it starts
        _limit_memory()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.chdir(req["cwd"])
        os.environ.update(req.get("env") or {})
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if req.get("mounts"):
            why = _mount_private(req["mounts"])
            if why:
                sys.stderr.write(f"SKIP {why}\n")
                sys.stderr.flush()
                os._exit(SKIP_CODE)
        sys.argv = [req["module"], *req["argv"]]
        try:
            runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt:
            traceback.print_exc()
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
            traceback.print_exc()
            code = 1
        import atexit
        atexit._run_exitfuncs()
    finally:
        if req.get("mounts") and req.get("listing"):  # what the run left on its private mounts, which die with it
            try:
                _list_mounts(req["mounts"], req["listing"])
            except Exception:  # noqa: BLE001 - never let the child return into the server
                os._exit(99)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _wait(pid: int, req: dict[str, Any]) -> int:
    """Wait for the child; send req['signal'] once a file matching req['signal_when'] (a glob) exists (after
    req['signal_delay'] s); kill it after req['timeout'] s. Returns the exit status, or -N for a death by signal N."""
    deadline = time.monotonic() + float(req.get("timeout", 300))
    sig, when, sent = req.get("signal"), req.get("signal_when"), False
    delay = float(req.get("signal_delay", 0))
    seen_at = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if sig and not sent and when and glob.glob(os.path.join(req["cwd"], when)):
            seen_at = seen_at or time.monotonic()
            if time.monotonic() - seen_at >= delay:
                os.killpg(pid, sig)
                sent = True
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
        time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)  # workers the child left behind
    except (ProcessLookupError, PermissionError):
        pass
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def run_request(req: dict[str, Any]) -> dict[str, Any]:
    """Run one case in a forked child: {"rc", "stdout", "stderr", "signalled"}."""
    # (no TemporaryDirectory: its atexit finalizer would run in the child, which runs the atexit hooks)
    fd, listing_name = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    os.unlink(listing_name)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        req = {**req, "listing": listing_name}
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(req, out.fileno(), err.fileno())
        rc = _wait(pid, req)
        out.seek(0)
        err.seek(0)
        listing = Path(listing_name)
        mounted = json.loads(listing.read_text()) if listing.exists() else []
        listing.unlink(missing_ok=True)
        return {"rc": rc, "stdout": out.read().decode(errors="replace"), "stderr": err.read().decode(errors="replace"),
                "mounted": mounted}


def serve() -> None:
    import lightning  # noqa: F401 - the slow imports every child shares
    import torch  # noqa: F401
    import torchvision  # noqa: F401

    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(json.dumps(run_request(json.loads(line))) + "\n")
            sys.stdout.flush()


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    argv: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)  # files on the private mounts when the run ended

    @property
    def skipped(self) -> bool:
        return self.rc == SKIP_CODE and self.stderr.startswith("SKIP ")


class CliRunner:
    """Runs `python -m MODULE ARGV` cases through the fork server (or, with FASTST_TEST_SUBPROCESS=1,
    each in a fresh interpreter)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.fresh = os.environ.get("FASTST_TEST_SUBPROCESS") == "1"
        self.server: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.server is None or self.server.poll() is not None:
            self.server = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           text=True, env=self.env, cwd=tempfile.gettempdir())
            assert json.loads(self.server.stdout.readline())["ready"]
        return self.server

    def run(self, module: str, argv: list[str], cwd: str | os.PathLike, timeout: float = 300,
            env: dict[str, str] | None = None, mounts: list[dict[str, Any]] | None = None,
            signal_when: str | None = None, signal_number: int | None = None, signal_delay: float = 0) -> Result:
        req = {"module": module, "argv": [str(a) for a in argv], "cwd": str(cwd), "timeout": timeout,
               "env": env or {}, "mounts": mounts or [], "signal_when": signal_when, "signal": signal_number,
               "signal_delay": signal_delay}
        if self.fresh:
            reply = _run_fresh(req, self.env)
        else:
            server = self._start()
            server.stdin.write(json.dumps(req) + "\n")
            server.stdin.flush()
            reply = json.loads(server.stdout.readline())
        return Result(reply["rc"], reply["stdout"], reply["stderr"], req["argv"], reply.get("mounted", []))

    def close(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.stdin.close()
            self.server.wait(timeout=30)


def _run_fresh(req: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """A fresh interpreter per case; mounts through `unshare -m` and `mount`, as a shell user would."""
    cmd = [sys.executable, "-m", req["module"], *req["argv"]]
    listing = ""
    if req["mounts"]:
        script = " && ".join(
            f"mount --make-rprivate / && mount -t tmpfs -o size={m.get('size', '64k')}{',ro' if m.get('ro') else ''} "
            f"tmpfs '{m['path']}'" for m in req["mounts"])
        files = [f"printf %s '{data}' > '{m['path']}/{name}'"
                 for m in req["mounts"] for name, data in (m.get("files") or {}).items()]
        listing = os.path.join(tempfile.gettempdir(), f"fastst-mounts-{os.getpid()}.txt")
        finds = "; ".join(f"find '{m['path']}' -type f >> '{listing}'" for m in req["mounts"])
        cmd = ["unshare", "-m", "sh", "-c", " && ".join([script, *files]) + f' || exit 77; "$@"; rc=$?; {finds}; exit $rc',
               "sh", *cmd]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=req["cwd"], env={**env, **req["env"]}, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True, preexec_fn=_limit_memory)
        rc = _wait_popen(proc, req)
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        if rc == SKIP_CODE and not stderr.startswith("SKIP"):
            stderr = "SKIP " + stderr
        mounted = []
        if req["mounts"] and os.path.exists(listing):
            mounted = Path(listing).read_text().split()
            os.unlink(listing)
        return {"rc": rc, "stdout": out.read().decode(errors="replace"), "stderr": stderr, "mounted": mounted}


def _wait_popen(proc: subprocess.Popen, req: dict[str, Any]) -> int:
    deadline = time.monotonic() + float(req.get("timeout", 300))
    sent, seen_at = False, None
    while proc.poll() is None:
        when = req.get("signal_when")
        if req.get("signal") and not sent and when and glob.glob(os.path.join(req["cwd"], when)):
            seen_at = seen_at or time.monotonic()
            if time.monotonic() - seen_at >= float(req.get("signal_delay", 0)):
                os.killpg(proc.pid, req["signal"])
                sent = True
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.02)
    return proc.returncode


if __name__ == "__main__":
    serve()
