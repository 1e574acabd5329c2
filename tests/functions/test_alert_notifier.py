"""functions/alert_notifier against a REAL PostgreSQL behind the Redshift Data API stand-in
(postgres_data_api: every call validated against the redshift-data model, the SQL translated the
way the local pipeline translates it) and SNS through a botocore Stubber: a planted outbreak is
one Publish; the next run publishes nothing; a failed Publish raises (Lambda's retries, then the
dead-letter queue) and the next run publishes it, once; a failed statement names itself."""

import pytest

from flu_monitor.warehouse import postgres, sqlscript
from tests.functions.conftest import ACCOUNT, REGION, load_function
from tests.functions.postgres_data_api import PostgresDataApi
from tests.warehouse.conftest import ingest
from tests.warehouse.test_detector import DAYS, START, _events

pytestmark = pytest.mark.postgres

TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:flu-abcd1234-alerts"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:flu-admin-AbCdEf"
EVENT = {
    "source": "aws.redshift-data",
    "detail-type": "Redshift Data Statement Status Change",
    "detail": {"statementName": "flu-abcd1234-refresh", "state": "FINISHED"},
}


@pytest.fixture
def app(postgres_db, monkeypatch):
    postgres.apply(postgres_db, refresh_after=False)
    counts = {fips: [20] * DAYS for fips in ("36001", "36047", "36061", "34003", "42101")}
    counts["36109"] = [5] * (DAYS - 2) + [19, 5]  # Tompkins County, NY, the latest complete day
    ingest(postgres_db, _events(counts))
    api = PostgresDataApi(postgres_db, sqlscript.load_script(None, postgres.LOCAL_PLACEHOLDERS))
    module = load_function("alert_notifier")
    monkeypatch.setattr(module, "clients", {"redshift-data": api})
    for name, value in {
        "WORKGROUP_NAME": "flu-abcd1234",
        "DATABASE": "dev",
        "SECRET_ARN": SECRET,
        "TOPIC_ARN": TOPIC,
        "DASHBOARD_URL": "",
    }.items():
        monkeypatch.setenv(name, value)
    yield module, api, postgres_db
    api.close()


def _stub_publish(stubber, notification_id, message):
    day = notification_id.split(":")[1]
    expected = {
        "TopicArn": TOPIC,
        "Subject": f"Flu outbreak alert: Tompkins County, NY ({day})",
        "Message": message,
        "MessageAttributes": {
            "notification_id": {"DataType": "String", "StringValue": notification_id},
            "county_fips": {"DataType": "String", "StringValue": "36109"},
        },
    }
    stubber.add_response("publish", {"MessageId": "m-1"}, expected)


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


def _pending_text(url):
    """The message text the notifier will publish, computed the way it does (checks the
    Stubber's expected Message exactly, including the detector's statistic)."""
    from flu_monitor.alerts.postgres import PostgresAlerts

    store = PostgresAlerts(url)
    try:
        with store.conn.transaction():
            store.claim()
            texts = [n.text() for n in store.pending()]
            raise _Rollback
    except _Rollback:
        pass
    finally:
        store.close()
    return texts


class _Rollback(Exception):
    pass
