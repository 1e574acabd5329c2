"""The test cluster's directory in memory: what a killed session left there is removed by the
next session, and nothing a live or starting session uses."""

import os
import time

from tests.fixtures.postgres_dir import PREFIX, _remove_left_behind


def _state_dir(parent, name, pid=None, age_s=0.0):
    state_dir = parent / f"{PREFIX}{name}"
    (state_dir / "data").mkdir(parents=True)
    if pid is not None:
        (state_dir / "data" / "postmaster.pid").write_text(f"{pid}\n/some/data\n")
    then = time.time() - age_s
    os.utime(state_dir, (then, then))
    return state_dir


def test_only_what_a_killed_session_left_is_removed(tmp_path):
    dead = _state_dir(tmp_path, "killed", pid=2**22 + 1, age_s=3600)  # above pid_max: gone
    never = _state_dir(tmp_path, "crashed-before-start", age_s=3600)
    live = _state_dir(tmp_path, "running", pid=os.getpid(), age_s=3600)
    starting = _state_dir(tmp_path, "starting", age_s=5)
    other = tmp_path / "someone-elses"
    other.mkdir()
    os.utime(other, (0, 0))
    _remove_left_behind(tmp_path)
    assert not dead.exists() and not never.exists()
    assert live.exists() and starting.exists() and other.exists()
