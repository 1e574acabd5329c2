"""A simulator run's delivery bookkeeping: the progress lines, the position of the last delivered
event (saved to the --state file after each confirmed flush), the pacing pause of a live run, and
stopping on SIGINT/SIGTERM."""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
import time
from pathlib import Path

PROGRESS_EVERY_S = 5.0
CHECKPOINT_EVERY_S = 1.0
# ... or after this many events, whichever comes first: a fast backfill (over 100,000 events/s with
# confluent-kafka) otherwise holds a whole day's events or more unsaved, all resent after a crash.
CHECKPOINT_EVERY_EVENTS = 20_000


class Progress:
    """A line on stderr every few seconds on long runs: total, events/s, simulated time."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.count = 0
        self.started = self.last = time.monotonic()

    def tick(self, event: dict) -> None:
        self.count += 1
        if self.count & 0x3FF or not self.enabled:
            return
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            rate = self.count / (now - self.started)
            print(
                f"simulate: {self.count:,} events, {rate:,.0f} events/s, "
                f"simulated time {event['event_time']}",
                file=sys.stderr,
                flush=True,
            )

    def done(self, where: str) -> None:
        if self.enabled:
            seconds = time.monotonic() - self.started
            rate = self.count / seconds if seconds > 0 else 0.0
            print(
                f"simulate: wrote {self.count:,} events to {where} in {seconds:.1f} s "
                f"({rate:,.0f} events/s)",
                file=sys.stderr,
                flush=True,
            )


class Position:
    """Where the delivered events reach (day, events of that day), saved to --state."""

    def __init__(self, path: Path | None, state):
        self.path = path
        self.state = state
        self.day_text = state.day.isoformat()
        self.saved_at = time.monotonic()
        self.events_at_save = state.events

    def advance(self, event: dict, live: bool) -> None:
        if self.path is None:
            return
        state = self.state
        if not event["event_time"].startswith(self.day_text):
            self.day_text = event["event_time"][:10]
            state.day, state.index = dt.date.fromisoformat(self.day_text), 0
        state.index += 1
        state.events += 1
        state.clock = event["event_time"]
        state.live = state.live or live

    def due(self) -> bool:
        return self.path is not None and (
            self.state.events - self.events_at_save >= CHECKPOINT_EVERY_EVENTS
            or time.monotonic() - self.saved_at >= CHECKPOINT_EVERY_S
        )

    def save(self) -> None:
        """Call only after the sink confirmed every event so far (flush)."""
        if self.path is not None:
            from flu_monitor.simulator import state

            state.save(self.path, self.state)
            self.saved_at = time.monotonic()
            self.events_at_save = self.state.events


def live_pause(target, position: Position, stop: threading.Event):
    """The pacing sleep of a live run. The model sleeps only when the next event lies ahead of
    real time, so the history is delivered by then: say so in the state (flushed first), and
    keep it saved during long waits; a stop signal ends the wait at once."""

    def pause(seconds: float) -> None:
        if position.path is not None and (not position.state.live or position.due()):
            target.flush()
            position.state.live = True
            position.save()
        stop.wait(seconds)

    return pause


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (also when SIGINT was ignored at launch): the loop
    stops before the next event, and pacing sleeps (waits on it) end at once."""
    stop = threading.Event()

    def handler(*_args):
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    return stop
