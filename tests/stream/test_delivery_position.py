"""The simulator's saved position is due after CHECKPOINT_EVERY_EVENTS events as well as after
CHECKPOINT_EVERY_S seconds, so a fast backfill is saved as it goes (simulator/delivery.py)."""

import datetime as dt
import json

from flu_monitor.simulator import delivery
from flu_monitor.simulator.state import SimState


def position(tmp_path, events_before=0):
    day = dt.date(2026, 11, 1)
    state = SimState("s.yaml", "0" * 64, 1, day, day, day, 0, events=events_before)
    return delivery.Position(tmp_path / "state.json", state)


def event(k):
    return {"event_time": f"2026-11-01T00:00:{k % 60:02d}Z"}


def test_due_after_the_event_count_however_little_time_passed(tmp_path, monkeypatch):
    monkeypatch.setattr(delivery, "CHECKPOINT_EVERY_S", 3600.0)  # only the count can make it due
    p = position(tmp_path, events_before=500)  # a continued run counts from where it resumed
    for k in range(delivery.CHECKPOINT_EVERY_EVENTS - 1):
        p.advance(event(k), live=False)
    assert not p.due()
    p.advance(event(0), live=False)
    assert p.due()
    p.save()
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["events"] == 500 + delivery.CHECKPOINT_EVERY_EVENTS and saved["live"] is False
    assert not p.due()  # counted again from the save


def test_due_after_the_time_with_few_events(tmp_path, monkeypatch):
    p = position(tmp_path)
    p.advance(event(1), live=True)
    monkeypatch.setattr(delivery, "CHECKPOINT_EVERY_S", 0.0)
    assert p.due()


def test_never_due_without_a_state_file(tmp_path):
    p = delivery.Position(None, position(tmp_path).state)
    for k in range(delivery.CHECKPOINT_EVERY_EVENTS + 1):
        p.advance(event(k), live=False)
    assert not p.due()
