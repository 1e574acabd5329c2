"""Child processes that never outlive their parent, and stop in bounded time.

    process = spawn(cmd, log_path, signal.SIGTERM)     # output appended to log_path
    terminate(process, signal.SIGTERM, timeout=15)     # then SIGKILL; always reaped

`die_with_parent` asks the kernel (prctl PR_SET_PDEATHSIG) to send the child `signum` when the
thread that started it ends — however it ends, SIGKILL included — so services and workers
started from the main thread go when their starter goes. `start_new_session` keeps a Ctrl-C in
the terminal away from them: the parent decides the order they stop in.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """In a child, before exec: receive `signum` when the parent dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)


def terminate(process: subprocess.Popen, signum: int, timeout: float) -> int:
    """Send `signum` (the process's clean-stop signal), wait up to `timeout` seconds, then
    SIGKILL; returns the exit code. Nothing is left running, not even a zombie."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def spawn(cmd: list[str], log: Path, parent_death_signal: int, **popen) -> subprocess.Popen:
    """Start `cmd` in its own session, stdin empty, stdout and stderr appended to `log`, told
    to receive `parent_death_signal` if this process dies (its clean-stop signal)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: die_with_parent(parent_death_signal),
            **popen,
        )


def stop_stale(pid_file: Path, marker: str, signum: int, timeout: float) -> None:
    """Stop the process a pid file names (its first line), if it still runs and its command line
    holds `marker` (a recycled pid belongs to someone else): `signum`, then SIGKILL after
    `timeout` seconds. For a service left by a run that could not stop it."""
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if marker.encode() not in cmdline:
        return
    deadline = time.monotonic() + timeout
    for sig in (signum, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not Path(f"/proc/{pid}").exists():
            return
        deadline = time.monotonic() + 5
