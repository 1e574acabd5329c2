"""Browser and `flu-monitor up` helpers for the end-to-end tests.

Chromium is Debian's (/usr/bin/chromium, package chromium), driven by Playwright; nothing is
downloaded (never `playwright install`). Every request the page makes is recorded, so a test can
prove the dashboard needs nothing beyond 127.0.0.1.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser_page(tmp_path):
    """A headless Chromium page at 1440x900 with its own profile; `.requests` lists every URL."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: install the Debian package chromium (make system-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900},
        )
        page = context.new_page()
        page.requests = []
        page.on("request", lambda request: page.requests.append(request.url))
        yield page
        context.close()


class UpProcess:
    """`flu-monitor up` in the background, with its output and its child processes."""

    def __init__(self, tmp_path: Path, *args: str, ignore_sigint: bool = False, name="up.out"):
        self.output = tmp_path / name
        env = {**os.environ, "FLU_MONITOR_STATE": str(tmp_path / "state")}
        # As `nohup` or `cmd &` in a script start it: SIGINT ignored from the start.
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flu_monitor", "up", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=ignore,
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for_output(self, needle: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while needle not in self.text():
            if self.process.poll() is not None:
                raise AssertionError(f"up exited with {self.process.returncode}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {needle!r} from up within {timeout_s:.0f} s:\n{self.text()}"
                )
            time.sleep(0.3)

    def descendants(self) -> set[int]:
        """Every live process below `up` (its children and theirs)."""
        parents = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                parents[int(entry.name)] = int(fields[1])
        found, frontier = set(), {self.process.pid}
        while frontier:
            frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
            found |= frontier
        return found

    def interrupt(self, timeout_s: float = 60) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def alive(pid: int) -> bool:
    """True for a running process (a zombie waiting for its parent does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def save_artifact(page, name: str) -> Path:
    """Screenshot into test-artifacts/; also into docs/ when FLU_MONITOR_UPDATE_SCREENSHOT=1."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("FLU_MONITOR_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(path, ARTIFACTS.parent / "docs" / name)
    return path
