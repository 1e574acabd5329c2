"""The AWS event source: the project's simulator producing flu case events to the MSK topic.

One function, two callers (nested/events.yaml):

* Custom::SimulatorBackfill (CloudFormation, once at stack creation): picks LiveFrom, the minute
  the live part starts (the next whole minute plus LIVE_MARGIN, so the schedule exists before
  it), and writes the history up to it: BackfillDays whole days before LiveFrom's day, exactly
  `Simulator.backfilled(scenario, seed, days, now=LiveFrom)`. Returns LiveFrom and Anchor (the
  day relative scenario days count from). Scenario, Seed, Speed and BackfillDays are fixed at
  creation: changing them on an update would rewrite history, so the update fails and says so.
* EventBridge Scheduler, every minute: {"scheduled_time": ..., "scenario", "seed", "speed",
  "anchor", "live_from"} -> the events of the simulated window LiveClock(live_from,
  speed).window(scheduled_time), computed from the seed with no state; consecutive minutes tile.
  A failed run raises, so the invocation is retried and then lands in the dead-letter queue with
  its input (the window can be produced again: same events, same case_ids).

Kafka: SASL_SSL with an MSK IAM token signed locally from the function's role (no endpoint
needed, so no NAT). Events are keyed by county_fips, acks=all, idempotent producer (sinks.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re

from flu_monitor import custom_resource as cr

log = logging.getLogger(__name__)
helper = cr.make_helper()

with helper.initialising():
    cr.use_bundle_home(__file__)
    from flu_monitor import kafka_client  # after FLU_MONITOR_HOME is set
    from flu_monitor.paths import SCENARIO_DIR

LIVE_MARGIN = dt.timedelta(minutes=3)
CONNECT_TIMEOUT_S = 20.0
FIXED_AT_CREATION = ("Scenario", "Seed", "Speed", "BackfillDays")
CLUSTER_ARN = re.compile(r"arn:[\w-]+:kafka:(?P<region>[a-z0-9-]+):\d{12}:cluster/[\w-]+/[\w-]+")


class EventSourceError(RuntimeError):
    """A run or its input is wrong; the message names what."""


def handler(event, context):
    if "RequestType" in event:
        return helper(event, context)
    return produce_minute(event)


# -- settings ------------------------------------------------------------------------------


def connection_config() -> dict:
    """Kafka settings for the cluster's IAM listener, from the function's environment."""
    servers = os.environ.get("BOOTSTRAP_SERVERS", "")
    match = CLUSTER_ARN.fullmatch(os.environ.get("CLUSTER_ARN", ""))
    if not servers or not match:
        raise EventSourceError("environment BOOTSTRAP_SERVERS and CLUSTER_ARN must be set")
    return kafka_client.client_config(
        servers, msk_iam=True, region=match["region"], timeout_s=CONNECT_TIMEOUT_S
    )


def topic() -> str:
    return os.environ.get("TOPIC", "flu_cases")


def scenario_path(name: str):
    """A scenario bundled from scenarios/ by name (default, county_outbreak, ...)."""
    path = SCENARIO_DIR / f"{name}.yaml"
    if not re.fullmatch(r"[a-z0-9_]+", name) or not path.is_file():
        known = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
        raise EventSourceError(f"scenario {name!r} is not one of {', '.join(known)}")
    return path


def simulator(scenario: str, seed: int, anchor: dt.date):
    from flu_monitor.simulator.model import Simulator
    from flu_monitor.simulator.scenario import load

    return Simulator(load(scenario_path(scenario)), seed, start=anchor, anchor=anchor)


def _instant(text: str, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise EventSourceError(f"{name} is not an ISO-8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise EventSourceError(f"{name} has no time zone: {text!r}")
    return value.astimezone(dt.UTC)


def _iso(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def produce(sim, start: dt.datetime, end: dt.datetime) -> int:
    """Write the simulator's events of [start, end) to the topic; the number written."""
    from flu_monitor.simulator.sinks import KafkaSink
    from flu_monitor.simulator.window import events_between

    sink = KafkaSink(connection_config(), topic())
    count = 0
    try:
        for day_events in events_between(sim, start, end):
            for event in day_events:
                sink.write(event)
            count += len(day_events)
    finally:
        sink.close()  # flushes; raises SinkError naming undelivered events
    log.info("wrote %d events of [%s, %s) to %s", count, _iso(start), _iso(end), topic())
    return count


# -- the schedule --------------------------------------------------------------------------


def produce_minute(event: dict) -> dict:
    """One scheduled run: the simulated window of the minute before scheduled_time."""
    from flu_monitor.simulator.window import LiveClock

    try:
        scheduled = _instant(event["scheduled_time"], "scheduled_time")
        live_from = _instant(event["live_from"], "live_from")
        anchor = dt.date.fromisoformat(event["anchor"])
        seed, speed = int(event["seed"]), int(event["speed"])
        scenario = str(event["scenario"])
    except (KeyError, ValueError, TypeError) as exc:
        raise EventSourceError(
            f"schedule input is malformed ({type(exc).__name__}: {exc})"
        ) from None
    window = LiveClock(live_from, speed).window(scheduled)
    if window is None:
        return {"events": 0, "window": None}
    count = produce(simulator(scenario, seed, anchor), *window)
    return {"events": count, "window": [_iso(window[0]), _iso(window[1])]}


# -- the backfill custom resource ---------------------------------------------------------


def settings(properties: dict) -> tuple[str, int, int, int]:
    scenario = cr.required(properties, "Scenario")
    scenario_path(scenario)
    seed = cr.integer(properties, "Seed", minimum=0)
    speed = cr.integer(properties, "Speed", minimum=1)
    days = cr.integer(properties, "BackfillDays", minimum=0)
    return scenario, seed, speed, days


def live_data(live_from: dt.datetime) -> dict:
    return {"LiveFrom": _iso(live_from), "Anchor": live_from.date().isoformat()}


def physical_id(live_from: dt.datetime) -> str:
    return f"flu-simulator-live-from-{_iso(live_from)}"


@helper.create
def create(event, _context):
    scenario, seed, _speed, days = settings(cr.props(event))
    now = dt.datetime.now(dt.UTC)
    live_from = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1) + LIVE_MARGIN
    sim = simulator(scenario, seed, live_from.date())
    first_day = dt.datetime.combine(live_from.date(), dt.time(), dt.UTC) - dt.timedelta(days=days)
    count = produce(sim, first_day, live_from)
    helper.Data.update(live_data(live_from), Events=str(count))
    return physical_id(live_from)


@helper.update
def update(event, _context):
    changed = [
        name
        for name in FIXED_AT_CREATION
        if str(cr.props(event).get(name, "")) != str(cr.old_props(event).get(name, ""))
    ]
    if changed:
        raise EventSourceError(
            f"{', '.join(changed)} cannot change on an existing stack (the history in the topic "
            "was made with the old values): keep them, or create a new stack"
        )
    live_from = _from_physical_id(event.get("PhysicalResourceId", ""))
    helper.Data.update(live_data(live_from))
    return event["PhysicalResourceId"]


@helper.delete
def delete(_event, _context):
    return None  # the events stay in the topic, which the streaming stack owns


def _from_physical_id(text: str) -> dt.datetime:
    match = re.fullmatch(r"flu-simulator-live-from-(.+Z)", text)
    if not match:
        raise EventSourceError(f"not a resource this function created: {text!r}")
    return _instant(match.group(1), "PhysicalResourceId")
