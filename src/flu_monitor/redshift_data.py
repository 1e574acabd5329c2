"""Rows of a finished Redshift Data API statement as Python tuples (stdlib only): shared by the
Lambda functions that read query results (sql_runner, alert_notifier)."""

from __future__ import annotations

from typing import Any

# "Field: A data value in a column. This data type is a UNION, so only one of the following
# members can be specified when used or returned": blobValue, booleanValue, doubleValue, isNull,
# longValue, stringValue (Redshift Data API Reference, Field). No query here selects a BLOB.
_VALUE_KEYS = ("stringValue", "longValue", "doubleValue", "booleanValue")


def value(field: dict[str, Any]) -> Any:
    """One Field as Python: None for isNull, else its one value."""
    if field.get("isNull"):
        return None
    for key in _VALUE_KEYS:
        if key in field:
            return field[key]
    raise ValueError(f"unexpected Data API field {field}")


def result_rows(client: Any, described: dict[str, Any]) -> list[tuple]:
    """Every row of a statement `described` (DescribeStatement's answer) as tuples, page after
    page of GetStatementResult (NextToken); none when it has no result set."""
    rows: list[tuple] = []
    token = None
    while described.get("HasResultSet"):
        page = client.get_statement_result(
            Id=described["Id"], **({"NextToken": token} if token else {})
        )
        rows += [tuple(value(field) for field in record) for record in page["Records"]]
        token = page.get("NextToken")
        if not token:
            break
    return rows
