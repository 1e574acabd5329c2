"""The simulator's events in a time window, and the live clock of the AWS event source.

A day's events depend only on (scenario, seed, anchor day, day) (Simulator.day_batch), so the
events of any window [start, end) are the day batches it touches, cut to the window: a stateless
producer (functions/simulator) can make each minute's events with nothing but the time, and get
exactly what `flu-monitor simulate` writes for the same seed and window.

    sim = Simulator(load_scenario(), seed=7, start=anchor)
    for day_events in events_between(sim, start, end): ...     # lists, one per UTC day

    clock = LiveClock(live_from, speed=60)                       # an hour of events per minute
    window = clock.window(scheduled_time)                        # simulated [start, end) or None
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import numpy as np

from flu_monitor.simulator.model import DayBatch, Simulator

DAY = dt.timedelta(days=1)
TICK = dt.timedelta(minutes=1)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def cut(batch: DayBatch, start: dt.datetime, end: dt.datetime) -> DayBatch:
    """The batch's events reported in [start, end) (batches are sorted by report time)."""
    origin = _midnight(batch.day)
    low, high = ((t - origin).total_seconds() for t in (start, end))
    first, stop = np.searchsorted(batch.seconds, [np.ceil(low), np.ceil(high)], side="left")
    columns = {
        f.name: getattr(batch, f.name)[first:stop]
        for f in dataclasses.fields(batch)
        if f.name != "day"
    }
    return DayBatch(day=batch.day, **columns)


def events_between(sim: Simulator, start: dt.datetime, end: dt.datetime) -> Iterator[list[dict]]:
    """The events with start <= event_time < end (aware UTC datetimes), one list per UTC day."""
    day = start.astimezone(dt.UTC).date()
    while _midnight(day) < end:
        batch = cut(sim.day_batch(day), max(start, _midnight(day)), min(end, _midnight(day) + DAY))
        if len(batch):
            yield batch.events()
        day += DAY


@dataclasses.dataclass(frozen=True)
class LiveClock:
    """Simulated time of the live part: from `live_from` on, `speed` simulated seconds per real
    second (1 = real time, 1440 = a day per minute). Before live_from lies the backfill."""

    live_from: dt.datetime
    speed: int = 1

    def simulated(self, real: dt.datetime) -> dt.datetime:
        return self.live_from + (real - self.live_from) * self.speed

    def window(
        self, scheduled: dt.datetime, period: dt.timedelta = TICK
    ) -> tuple[dt.datetime, dt.datetime] | None:
        """Simulated [start, end) that the run scheduled at `scheduled` produces: the real
        period before it, mapped to simulated time; consecutive runs tile without gap or overlap.
        None when the whole period lies before live_from (the backfill already wrote it)."""
        if scheduled <= self.live_from:
            return None
        start = max(scheduled - period, self.live_from)
        return self.simulated(start), self.simulated(scheduled)
