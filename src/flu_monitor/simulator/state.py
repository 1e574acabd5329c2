"""The simulator's clock between runs: how far its delivered events reach, so a restart
continues instead of replaying (`flu-monitor simulate --state FILE`; `flu-monitor up` keeps one per
topic in its state directory).

A run's events are fixed by the scenario, the seed and the calendar (each day's events are drawn
from (seed, day), see model.py), so "how far" is a position: the day, and how many of that day's
events were delivered. The file also keeps what the position is only valid for — scenario file
(path and SHA-256), seed, start day, and the anchor relative scenario days count from — and a
restart with different ones is refused rather than mixing two runs in one history.

The file is rewritten atomically (write, then rename) after each flush the sink confirmed, so it
never claims an event that was not delivered; after a kill it may claim fewer, and the events
sent again are the same events (same case_id), which the warehouse counts once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

VERSION = 1


class StateError(ValueError):
    """The state file is unreadable or belongs to another run; the message says what to do."""


@dataclass
class SimState:
    scenario: str  # resolved path of the scenario file
    scenario_sha256: str
    seed: int
    start: dt.date  # first simulated day of the first run
    anchor: dt.date  # the day relative scenario days ("-6d") count from
    day: dt.date  # the day to continue on ...
    index: int  # ... after this many of its events (delivered)
    events: int = 0  # delivered over all runs
    clock: str | None = None  # event_time of the last delivered event
    live: bool = False  # the history up to the first run's start time is delivered

    def to_json(self) -> str:
        data = {"version": VERSION, **asdict(self)}
        for key in ("start", "anchor", "day"):
            data[key] = data[key].isoformat()
        return json.dumps(data, indent=2) + "\n"


def scenario_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load(path: str | Path) -> SimState | None:
    """The state in `path`, or None when there is no file yet."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the simulator state {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.pop("version", None) != VERSION:
            raise ValueError(f"not version {VERSION}")
        missing = {"start", "anchor", "day"} - set(data)
        if missing:
            raise ValueError(f"no {', '.join(sorted(missing))}")
        for key in ("start", "anchor", "day"):
            data[key] = dt.date.fromisoformat(data[key])
        state = SimState(**data)
        numbers = (state.seed, state.index, state.events)
        if not all(isinstance(n, int) and n >= 0 for n in numbers):
            raise ValueError("seed, index and events must be whole numbers >= 0")
        return state
    except (ValueError, TypeError, AttributeError) as exc:
        raise StateError(
            f"{path} is not a simulator state file ({exc}); delete it to start over"
        ) from None


def save(path: str | Path, state: SimState) -> None:
    """Replace the file atomically: a reader (or a crash) sees the old state or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(state.to_json(), encoding="utf-8")
    tmp.replace(path)


def check_same_run(state: SimState, path: str | Path, scenario: str | Path, seed: int) -> None:
    """StateError unless the scenario file (content too) and the seed are the state's."""
    scenario = str(Path(scenario).resolve())
    if state.seed != seed:
        problem = f"--seed {state.seed}, not {seed}"
    elif state.scenario != scenario:
        problem = f"--scenario {state.scenario}, not {scenario}"
    elif state.scenario_sha256 != scenario_digest(scenario):
        problem = f"{scenario} as it was then (the file has changed since)"
    else:
        return
    raise StateError(
        f"the simulated history in {path} was made with {problem}: run with the same settings "
        "to continue it, or start over (delete it and the data: `make clean`)"
    )
