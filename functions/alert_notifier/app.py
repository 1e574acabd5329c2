"""The alert notifier on AWS: after each scheduled refresh, publish every new outbreak alert
episode to the stack's SNS topic, once (nested/alerts.yaml).

Triggered by an EventBridge rule on the refresh statement's "Redshift Data Statement Status
Change" event (state FINISHED; the schedule sets WithEvent), so it queries Redshift only while
the refresh has the workgroup running. It runs the same three steps as `flu-monitor notify`
(flu_monitor.alerts.notifications): CLAIM the new episodes in the warehouse (LOCK + INSERT in one
BatchExecuteStatement: "the SQL statements are run as a single transaction"), publish each
claimed one, mark it sent. Delivery is at least once: a run that dies between Publish and the
mark publishes that alert again next time, with the same notification_id (message attribute
and text). A failed run raises: Lambda retries the event twice, then sends it to the
dead-letter queue; the claimed alerts stay claimed and the next refresh's run delivers them.

With DELIVERY=daily-digest (AlertDelivery) a daily schedule runs it instead, and every claimed
alert goes out in ONE message (notifications.digest_body), marked sent after the Publish: a run
that dies in between publishes the same digest, with the same id, next time.

Environment: WORKGROUP_NAME or CLUSTER_IDENTIFIER, DATABASE, SECRET_ARN, TOPIC_ARN and
optionally DASHBOARD_URL and DELIVERY (each, the default, or daily-digest).
"""

from __future__ import annotations

import json
import logging
import os
import time

import boto3

from flu_monitor import redshift_data
from flu_monitor.alerts import notifications

log = logging.getLogger()
log.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

WAIT_STEPS_S = (0.1, 0.25, 0.5, 1.0, 2.0)  # DescribeStatement back-off
WAIT_LIMIT_S = 240.0  # the function's timeout is 300 s
clients: dict[str, object] = {}  # made on first use; tests put botocore-Stubber'd clients here


class StatementFailed(RuntimeError):
    """A Data API statement FAILED or was ABORTED; the message ends with Redshift's error."""


def client(service: str):
    if service not in clients:
        clients[service] = boto3.client(service)
    return clients[service]


class DataApiAlerts:
    """claim / pending / mark_sent through the Redshift Data API (the Secrets Manager secret)."""

    def __init__(self, environ):
        target = (
            {"WorkgroupName": environ["WORKGROUP_NAME"]}
            if environ.get("WORKGROUP_NAME")
            else {"ClusterIdentifier": environ["CLUSTER_IDENTIFIER"]}
        )
        self.connection = {**target, "Database": environ["DATABASE"]}
        self.connection["SecretArn"] = environ["SECRET_ARN"]
        self.api = client("redshift-data")

    def _wait(self, statement_id: str, label: str) -> dict:
        deadline = time.monotonic() + WAIT_LIMIT_S
        for attempt in range(10**9):
            described = self.api.describe_statement(Id=statement_id)
            if described["Status"] == "FINISHED":
                return described
            if described["Status"] in ("FAILED", "ABORTED"):
                raise StatementFailed(f"{label} {described['Status']}: {described.get('Error')}")
            if time.monotonic() > deadline:
                raise StatementFailed(f"{label} still {described['Status']} after {WAIT_LIMIT_S}s")
            time.sleep(WAIT_STEPS_S[min(attempt, len(WAIT_STEPS_S) - 1)])
        raise AssertionError("unreachable")

    def claim(self) -> None:
        sqls = [notifications.LOCK_SQL, notifications.CLAIM_SQL]
        answer = self.api.batch_execute_statement(
            Sqls=sqls, StatementName="flu-monitor-alerts/claim", **self.connection
        )
        self._wait(answer["Id"], "claim")

    def pending(self) -> list[notifications.Notification]:
        answer = self.api.execute_statement(
            Sql=notifications.PENDING_SQL, StatementName="flu-monitor-alerts/pending",
            **self.connection,
        )  # fmt: skip
        described = self._wait(answer["Id"], "pending")
        rows = redshift_data.result_rows(self.api, described)
        return [notifications.Notification.from_row(row) for row in rows]

    def mark_sent(self, notification_id: str) -> None:
        answer = self.api.execute_statement(
            Sql=notifications.MARK_SENT_SQL,
            Parameters=[{"name": "notification_id", "value": notification_id}],
            StatementName="flu-monitor-alerts/sent",
            **self.connection,
        )
        self._wait(answer["Id"], f"mark {notification_id} sent")


def publish(notification: notifications.Notification) -> None:
    """One SNS message: the subject and text people read; the id as a message attribute, so
    subscribers (Lambda, SQS, HTTPS) can drop a repeat."""
    client("sns").publish(
        TopicArn=os.environ["TOPIC_ARN"],
        Subject=notification.subject(),
        Message=notification.text(os.environ.get("DASHBOARD_URL") or None),
        MessageAttributes={
            "notification_id": {"DataType": "String", "StringValue": notification.notification_id},
            "county_fips": {"DataType": "String", "StringValue": notification.county_fips},
        },
    )


def publish_digest(pending: list[notifications.Notification]) -> None:
    """One SNS message for every claimed alert: the digest's id and the counties it names as
    attributes. "Amazon SNS compares policy attributes only to message attributes that have the
    following data types: String, String.Array, Number" (SNS, "Filter policy constraints"), so
    a county_fips filter policy matches both the single alerts and the digests naming it."""
    digest = notifications.digest_body(pending, os.environ.get("DASHBOARD_URL") or None)
    counties = sorted({n.county_fips for n in pending})
    client("sns").publish(
        TopicArn=os.environ["TOPIC_ARN"],
        Subject=f"Flu outbreak alerts: {len(pending)} new (daily digest)",
        Message=digest["text"],
        MessageAttributes={
            "notification_id": {"DataType": "String", "StringValue": digest["notification_id"]},
            "county_fips": {"DataType": "String.Array", "StringValue": json.dumps(counties)},
        },
    )


def handler(event, context):
    detail = event.get("detail", {}) if isinstance(event, dict) else {}
    delivery = os.environ.get("DELIVERY") or "each"
    log.info("%s: %s %s", delivery, detail.get("statementName", "schedule"), detail.get("state"))
    store = DataApiAlerts(os.environ)
    if delivery == "daily-digest":
        sent = notifications.deliver_pending_as_digest(store, publish_digest)
    else:
        sent = notifications.deliver_pending(store, publish)
    for n in sent:
        log.info("published %s (%s)", n.notification_id, n.place)
    return {"published": [n.notification_id for n in sent]}
