"""functions/alert_notifier against a REAL PostgreSQL behind the Redshift Data API stand-in
(postgres_data_api: every call validated against the redshift-data model, the SQL translated the
way the local pipeline translates it) and SNS through a botocore Stubber: a planted outbreak is
one Publish; the next run publishes nothing; a failed Publish raises (Lambda's retries, then the
dead-letter queue) and the next run publishes it, once; a failed statement names itself. With
DELIVERY=daily-digest, two outbreaks are one Publish listing both, and a failed digest is
published once, whole, by the next run."""

import hashlib
import json

import pytest

from flu_monitor.alerts import notifications
from flu_monitor.warehouse import postgres, sqlscript
from tests.functions.conftest import ACCOUNT, REGION, load_function
from tests.functions.postgres_data_api import PostgresDataApi
from tests.warehouse.conftest import ON_APPLIED, ingest
from tests.warehouse.test_detector import (
    DAYS,
    PLANTED_GROUP,
    START,
    _events,
    planted_counts,
    planted_outbreak,
)

# One worker runs the module under `pytest -n --dist loadgroup`, with the other tests of the
# planted outbreak (PLANTED_GROUP), whose database the DELIVERY=each tests copy: the worker that
# fills it (once for all workers, postgres_copy) is the one waiting for it, not a second one.
pytestmark = [pytest.mark.postgres, PLANTED_GROUP]

TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:flu-abcd1234-alerts"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:flu-admin-AbCdEf"
EVENT = {
    "source": "aws.redshift-data",
    "detail-type": "Redshift Data Statement Status Change",
    "detail": {"statementName": "flu-abcd1234-refresh", "state": "FINISHED"},
}


def _two_outbreaks():
    """The planted outbreak (Tompkins County, NY, the latest complete day) and a second one a
    day earlier in Hamilton County, NY."""
    counts = planted_counts()
    counts["36041"] = [5] * (DAYS - 3) + [19, 5, 5]
    return counts


@pytest.fixture
def app(postgres_copy, monkeypatch):
    """Tompkins County, NY: 19 cases on the latest complete day (planted_counts)."""
    yield from _app(planted_outbreak(postgres_copy), monkeypatch, delivery="each")


@pytest.fixture
def digest_app(postgres_copy, monkeypatch):
    url = postgres_copy(
        "notifier_daily-digest", lambda url: ingest(url, _events(_two_outbreaks())), ON_APPLIED
    )
    yield from _app(url, monkeypatch, "daily-digest")


def _app(postgres_db, monkeypatch, delivery):
    api = PostgresDataApi(postgres_db, sqlscript.load_script(None, postgres.LOCAL_PLACEHOLDERS))
    module = load_function("alert_notifier")
    monkeypatch.setattr(module, "clients", {"redshift-data": api})
    for name, value in {
        "WORKGROUP_NAME": "flu-abcd1234",
        "DATABASE": "dev",
        "SECRET_ARN": SECRET,
        "TOPIC_ARN": TOPIC,
        "DASHBOARD_URL": "",
        "DELIVERY": delivery,
    }.items():
        monkeypatch.setenv(name, value)
    yield module, api, postgres_db
    api.close()


def _stub(stubber, subject, message, notification_id, county_fips: tuple[str, str]):
    """One expected Publish; county_fips is the attribute's (DataType, StringValue)."""
    expected = {
        "TopicArn": TOPIC,
        "Subject": subject,
        "Message": message,
        "MessageAttributes": {
            "notification_id": {"DataType": "String", "StringValue": notification_id},
            "county_fips": {"DataType": county_fips[0], "StringValue": county_fips[1]},
        },
    }
    stubber.add_response("publish", {"MessageId": "m-1"}, expected)


def _stub_publish(stubber, notification_id, message):
    day = notification_id.split(":")[1]
    subject = f"Flu outbreak alert: Tompkins County, NY ({day})"
    _stub(stubber, subject, message, notification_id, ("String", "36109"))


def _status(api):
    with api.conn.cursor() as cur:
        cur.execute("SELECT notification_id, status FROM flu_alert_notifications")
        return cur.fetchall()


def test_a_planted_outbreak_is_published_once(app, stubbed):
    module, api, url = app
    sns, stubber = stubbed("sns")
    module.clients["sns"] = sns
    day = START.fromordinal(START.toordinal() + DAYS - 2).isoformat()
    notification_id = f"36109:{day}"
    (pending,) = _pending_text(url)
    assert pending.splitlines()[1].startswith("19 cases in 1 day against ")
    _stub_publish(stubber, notification_id, pending)
    assert module.handler(EVENT, None) == {"published": [notification_id]}
    assert _status(api) == [(notification_id, "sent")]
    # the claim ran as one batch, LOCK first; the id was a Data API parameter
    assert api.executed[:2] == [
        module.notifications.LOCK_SQL,
        module.notifications.CLAIM_SQL,
    ]
    # the next refresh's run: nothing new, no Publish (the Stubber has no response left)
    assert module.handler(EVENT, None) == {"published": []}


def test_a_failed_publish_raises_and_the_next_run_publishes_it_once(app, stubbed):
    module, api, url = app
    sns, stubber = stubbed("sns")
    module.clients["sns"] = sns
    (text,) = _pending_text(url)
    stubber.add_client_error("publish", "InternalError", "SNS is unwell", 500)
    with pytest.raises(Exception, match="SNS is unwell"):
        module.handler(EVENT, None)
    ((notification_id, status),) = _status(api)
    assert status == "claimed"
    _stub_publish(stubber, notification_id, text)
    assert module.handler(EVENT, None) == {"published": [notification_id]}
    assert _status(api) == [(notification_id, "sent")]


def test_a_failed_statement_names_itself(app, monkeypatch):
    module, api, url = app
    with api.conn.cursor() as cur:
        cur.execute("DROP VIEW v_alert_episodes")
    with pytest.raises(module.StatementFailed, match=r"^claim FAILED: ERROR: relation"):
        module.handler(EVENT, None)


SCHEDULED = {"source": "aws.scheduler"}  # the digest schedule sends no Input of its own


def _stub_digest(stubber, ids, counties, text):
    digest_id = "digest:" + hashlib.sha256(" ".join(sorted(ids)).encode()).hexdigest()[:16]
    subject = f"Flu outbreak alerts: {len(ids)} new (daily digest)"
    _stub(stubber, subject, text, digest_id, ("String.Array", json.dumps(counties)))


def test_the_daily_digest_is_one_publish_listing_every_new_alert(digest_app, stubbed):
    module, api, url = digest_app
    sns, stubber = stubbed("sns")
    module.clients["sns"] = sns
    last = START.fromordinal(START.toordinal() + DAYS - 2).isoformat()
    before = START.fromordinal(START.toordinal() + DAYS - 3).isoformat()
    ids = [f"36041:{before}", f"36109:{last}"]  # oldest episode first
    text = _pending_text(url, digest=True)
    lines = text.splitlines()
    assert lines[0] == "Flu outbreak alerts: 2 new"
    assert lines[1].startswith(f"- Hamilton County, NY (county 36041) from {before}: 19 cases ")
    assert lines[1].endswith(f"; trend 1d [{ids[0]}]")
    assert lines[2].startswith(f"- Tompkins County, NY (county 36109) from {last}: 19 cases ")
    assert lines[2].endswith(f"; trend 1d [{ids[1]}]")
    assert len(lines) == 3
    _stub_digest(stubber, ids, ["36041", "36109"], text)
    assert module.handler(SCHEDULED, None) == {"published": ids}
    assert sorted(_status(api)) == [(ids[0], "sent"), (ids[1], "sent")]
    # the next day: nothing new, no Publish (the Stubber has no response left)
    assert module.handler(SCHEDULED, None) == {"published": []}


def test_a_failed_digest_stays_claimed_and_the_next_run_publishes_it_once(digest_app, stubbed):
    module, api, url = digest_app
    sns, stubber = stubbed("sns")
    module.clients["sns"] = sns
    text = _pending_text(url, digest=True)
    stubber.add_client_error("publish", "InternalError", "SNS is unwell", 500)
    with pytest.raises(Exception, match="SNS is unwell"):
        module.handler(SCHEDULED, None)
    claimed = sorted(_status(api))
    assert [status for _, status in claimed] == ["claimed", "claimed"]
    ids = [notification_id for notification_id, _ in claimed]
    _stub_digest(stubber, ids, ["36041", "36109"], text)
    assert module.handler(SCHEDULED, None) == {"published": ids}
    assert sorted(_status(api)) == [(ids[0], "sent"), (ids[1], "sent")]
    assert module.handler(SCHEDULED, None) == {"published": []}


def _pending_text(url, digest=False):
    """The message text the notifier will publish, computed the way it does (checks the
    Stubber's expected Message exactly, including the detector's statistic)."""
    from flu_monitor.alerts.postgres import PostgresAlerts

    store = PostgresAlerts(url)
    try:
        with store.conn.transaction():
            store.claim()
            pending = store.pending()
            texts = [n.text() for n in pending]
            digest_text = notifications.digest_body(pending)["text"]
            raise _Rollback
    except _Rollback:
        pass
    finally:
        store.close()
    return digest_text if digest else texts


class _Rollback(Exception):
    pass
