"""`flu-monitor notify` on real PostgreSQL with a real HTTP receiver: a planted outbreak is one
POST (and one console line); a webhook that fails is retried; a notifier killed after claiming
delivers on its next run; kill -9 at random moments loses none, and repeats at most the one in
flight per kill, always with the same notification_id (at least once, docs/alerts.md)."""

import random
import subprocess
import sys
import time

import psycopg
import pytest

from flu_monitor.alerts.postgres import PostgresAlerts
from tests.fixtures.postgres import worker_unique
from tests.fixtures.webhook import Receiver
from tests.warehouse.conftest import ON_APPLIED, ingest
from tests.warehouse.test_detector import DAYS, _events

# One worker runs the module under `pytest -n --dist loadgroup`: its tests share one copy of the
# planted outbreaks (the module-scoped `planted`), made once, not once per worker.
pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("notify")]

SPIKED = ("36109", "36011", "34041", "42027", "42117")  # small counties of the three states
DATABASE = worker_unique("notify_tests")  # the planted outbreaks' copy the module's tests share
FLAT = ("36001", "36047", "36061", "34003", "34013", "42101", "42003")
DEADLINE_S = 120.0


@pytest.fixture
def receiver():
    made = []

    def make(**kwargs):
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def notify(url, *args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "flu_monitor", "notify", "--database-url", url, *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        **kwargs,
    )


def _episodes(url) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT notification_id FROM v_alert_episodes")}


def _notified(url) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT notification_id, status FROM flu_alert_notifications ORDER BY 1"
        ).fetchall()


def _plant_outbreaks(url) -> None:
    counts = {fips: [20] * DAYS for fips in FLAT}
    counts.update({fips: [5] * (DAYS - 2) + [25, 5] for fips in SPIKED})
    ingest(url, _events(counts))


@pytest.fixture(scope="module")
def planted(postgres_copies):
    """Flat counties, and an outbreak in each SPIKED county on the latest complete day: one
    database for the module's tests (see `outbreaks`)."""
    url = postgres_copies.copy(
        "notify_outbreaks", _plant_outbreaks, as_name=DATABASE, base=ON_APPLIED
    )
    episodes = _episodes(url)
    assert len(episodes) >= 3, episodes  # several alerts, so kills land between them
    yield url, episodes
    with psycopg.connect(postgres_copies.server.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


@pytest.fixture
def outbreaks(planted):
    """The planted outbreaks with nothing notified yet. The notifier writes only its table,
    flu_alert_notifications (flu_monitor.alerts.postgres: claim, mark_sent); emptied, the
    database is as a fresh copy of the planted one would be (a copy and its drop cost ~1 s of
    disk writes per test)."""
    url, _ = planted
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE flu_alert_notifications")
    return planted


def test_a_planted_outbreak_is_posted_once_and_printed(outbreaks, receiver):
    url, episodes = outbreaks
    hook = receiver()
    first = notify(url, "--once", "--alert-webhook", hook.url)
    assert first.returncode == 0, first.stderr
    assert sorted(hook.ids()) == sorted(episodes)
    alert_lines = [line for line in first.stdout.splitlines() if line.startswith("ALERT ")]
    assert len(alert_lines) == len(episodes)
    assert any("Tompkins County, NY (county 36109)" in line for line in alert_lines)
    body = next(b for b in hook.bodies if b["notification_id"].startswith("36109:"))
    assert body["text"].startswith("Flu outbreak alert: Tompkins County, NY")
    assert body["alert"]["observed"] == 25.0
    headers = next(h for h, b in zip(hook.headers, hook.bodies, strict=True) if b is body)
    assert headers["Idempotency-Key"] == body["notification_id"]
    # the next round has nothing new
    again = notify(url, "--once", "--alert-webhook", hook.url)
    assert again.returncode == 0 and "ALERT" not in again.stdout
    assert len(hook.bodies) == len(episodes)
    assert {s for _, s in _notified(url)} == {"sent"}


def test_a_failing_webhook_is_retried_with_back_off(outbreaks, receiver):
    url, episodes = outbreaks
    hook = receiver(failures=2)  # two 503s, then accepted
    done = notify(url, "--once", "--alert-webhook", hook.url, "--retry-after", "0.1")
    assert done.returncode == 0, done.stderr
    assert sorted(hook.ids()) == sorted(episodes)
    first, second, third = hook.arrivals[:3]  # the first alert: 503, 503, accepted
    assert second - first >= 0.1 and third - second >= 0.2  # --retry-after, then twice that


def test_a_webhook_that_is_down_keeps_the_alerts_claimed_until_it_is_back(outbreaks, receiver):
    url, episodes = outbreaks
    hook = receiver()
    down = hook.url.replace(str(hook.server.server_address[1]), "1")  # nothing listens on 1
    # 4 retries 0.01 s, 0.02 s, 0.04 s and 0.08 s apart (by default 0.5 s to 4 s: 7.5 s in all)
    failed = notify(url, "--once", "--alert-webhook", down, "--retry-after", "0.01")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("Error: DeliveryError: ")
    assert "(after 5 attempts)" in failed.stderr
    assert {s for _, s in _notified(url)} == {"claimed"}
    back = notify(url, "--once", "--alert-webhook", hook.url)
    assert back.returncode == 0, back.stderr
    assert sorted(hook.ids()) == sorted(episodes)


def test_killed_after_claiming_the_next_run_delivers(outbreaks, receiver):
    """The kill between detection and delivery, made exact: the claim is committed, nothing sent."""
    url, episodes = outbreaks
    alerts = PostgresAlerts(url)
    assert alerts.claim() == len(episodes)
    alerts.close()
    hook = receiver()
    assert notify(url, "--once", "--alert-webhook", hook.url).returncode == 0
    assert sorted(hook.ids()) == sorted(episodes)


# When each kill -9 lands, relative to the notifier's progress (claims, POSTs reaching the
# receiver, rows marked sent): ("spawn", s) s after it was started, start-up included (a loaded
# machine may not get further); ("progress" | "post" | "mark", s) s after its next progress of that
# kind was seen. Each s is drawn at random, and kept inside the receiver's 0.2 s answer when a POST
# is what was seen: so the kills land before the claim, between the claim and the first POST, with
# a POST in flight (delivered, not marked: its one repeat), after a mark, and anywhere.
KILL_MOMENTS = (("spawn", 0.6), ("progress", 0.1), ("post", 0.1), ("mark", 0.1), ("spawn", 1.0))


def test_kill9_at_random_moments_loses_none_and_repeats_only_the_one_in_flight(
    outbreaks, receiver, tmp_path
):
    url, episodes = outbreaks
    hook = receiver(delay_s=0.2)  # a slow receiver: kills land during deliveries too
    rng = random.Random(20261202)
    args = [sys.executable, "-m", "flu_monitor", "notify", "--database-url", url]
    args += ["--alert-webhook", hook.url, "--every", "0.2"]
    deadline = time.monotonic() + 3 * DEADLINE_S
    watch = psycopg.connect(url, autocommit=True)  # one connection for the polling below

    def notified() -> list[tuple]:
        return watch.execute(
            "SELECT notification_id, status FROM flu_alert_notifications ORDER BY 1"
        ).fetchall()

    def seen() -> dict[str, object]:
        rows = notified()
        with hook.lock:
            posts = len(hook.arrivals)
        return {"progress": (posts, rows), "post": posts, "mark": [s for _, s in rows]}

    with open(tmp_path / "notify.log", "ab") as log:
        for kind, longest_s in KILL_MOMENTS:
            before = seen()
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            if kind != "spawn":  # wait for that progress (or for the end: nothing left to do)
                while seen()[kind] == before[kind] and {s for _, s in notified()} != {"sent"}:
                    assert time.monotonic() < deadline, (notified(), hook.ids())
                    assert process.poll() is None, process.returncode
                    time.sleep(0.02)
            time.sleep(rng.uniform(0.0, longest_s))
            process.kill()
            process.wait()
    # the run after the kills delivers what they left claimed (no kill to land in a POST now)
    hook.delay_s = 0.0
    assert notify(url, "--once", "--alert-webhook", hook.url).returncode == 0
    watch.close()
    received = hook.ids()
    assert sorted(set(received)) == sorted(episodes)  # none lost
    assert sorted(i for i, _ in _notified(url)) == sorted(episodes)  # claimed once each
    assert {s for _, s in _notified(url)} == {"sent"}
    repeats = len(received) - len(set(received))
    assert repeats <= len(KILL_MOMENTS)  # at most the one in flight per kill, under the same id
    # and a clean run afterwards adds nothing
    assert notify(url, "--once", "--alert-webhook", hook.url).returncode == 0
    assert len(hook.ids()) == len(received)


def test_bad_options_are_one_line_usage_errors(planted):
    bad = notify(planted[0], "--alert-webhook", "not-a-url")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        "Error: Invalid value for --alert-webhook: 'not-a-url' is not an http(s) URL."
    )
    gone = notify("postgresql://127.0.0.1:1/nothing", "--once")
    assert gone.returncode == 1
    assert len(gone.stderr.strip().splitlines()) == 1
    assert gone.stderr.startswith("Error: OperationalError: ")


def test_the_digest_is_one_message_listing_every_new_alert(outbreaks, receiver):
    url, episodes = outbreaks
    hook = receiver()
    first = notify(url, "--once", "--digest", "--alert-webhook", hook.url)
    assert first.returncode == 0, first.stderr
    (body,) = hook.bodies
    assert body["notification_ids"] == sorted(episodes)
    lines = body["text"].splitlines()
    assert lines[0] == f"Flu outbreak alerts: {len(episodes)} new"
    assert sorted(line.rsplit("[", 1)[1].rstrip("]") for line in lines[1:]) == sorted(episodes)
    assert body["notification_id"].startswith("digest:")
    assert len([line for line in first.stdout.splitlines() if line.startswith("ALERT ")]) == 1
    # all marked sent: the next digest round has nothing to send
    assert notify(url, "--once", "--digest", "--alert-webhook", hook.url).returncode == 0
    assert len(hook.bodies) == 1
    assert {s for _, s in _notified(url)} == {"sent"}
