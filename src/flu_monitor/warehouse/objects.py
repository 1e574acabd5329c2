"""The plan's objects: what each statement of sql/ becomes on PostgreSQL (LocalObject, of a
Kind), and the markers its refresh statements carry. Made by the planner (plan.py, stage 4 of the
translation), run by the PostgreSQL runtime (postgres.py), which imports only this module, not
sqlglot: ingesting and refreshing read the plan apply() stored, and start without the translator.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class TranslationError(ValueError):
    """A statement of sql/ uses something the translation does not handle; names the object."""


SEQ = "_seq"  # hidden, increasing row number of every local materialized-view table
# The stream's refresh time (Redshift: when the refresh read the record); locally the refresh's
# own time, strictly later at every refresh, so it orders records by when they were read.
REFRESH_STAMP = "refresh_time"
STAMP = "__refresh_stamp__"  # marker in the stream's refresh statement, replaced by refresh()
# Watermark markers in refresh statements (replaced by integers; the SQL may contain % itself).
LO, HI = "__watermark_lo__", "__watermark_hi__"
# In an append view's second refresh statement (see _fresh_settled): the settled aggregate's
# highest _seq before this refresh, so the statement reads only the rows this refresh made.
FRESH_SINCE = "__fresh_since_{}__"
DAY = "day"  # the column a day-keyed relation's rows are keyed by (a DATE)
# Markers in a days view's refresh statements (plan._days_steps), replaced by refresh(): the days
# recomputed (a DATE[] literal), and the first and last days its inputs are read from (DATEs).
DAYS, FROM_DAY, TO_DAY = "__days__", "__from_day__", "__to_day__"


class Kind(enum.StrEnum):
    """What an object of sql/ is locally; for a materialized view, how it is refreshed."""

    SCHEMA = "schema"
    TABLE = "table"
    VIEW = "view"
    STREAM = "stream"
    APPEND = "append"
    PROJECTION = "projection"
    AGGREGATE = "aggregate"
    DAYS = "days"
    FULL = "full"


@dataclass
class LocalObject:
    """What one sql/ statement becomes on PostgreSQL."""

    name: str
    kind: Kind
    create: list[str]
    drop: list[str]
    # A materialized view's refresh, in order (stream: with STAMP; append/aggregate: with LO, HI;
    # projection: none). An append view joining settled aggregates has two alternatives instead:
    # [joining the aggregates whole, joining only this refresh's rows of them] (_fresh_settled).
    # None for anything else.
    refresh_steps: list[str] | None = None
    source: str | None = None  # the growing relation an incremental view reads
    reads: list[str] = field(default_factory=list)  # relations named (for full recompute)
    columns: list[str] = field(default_factory=list)
    note: str | None = None  # why a view is recomputed in full
    query: str | None = None  # the view's SELECT in PostgreSQL (what a full recompute runs)
    # Day-keyed relations (days views, aggregates grouped by day): how many days after a changed
    # day of what it reads a row can change (0 for an aggregate: only its own day); None else.
    # An aggregate's refresh then returns (day, rows written) per day it wrote; a days view's
    # refresh_steps recompute it in full and day_steps only some days (DAYS, FROM_DAY).
    reach: int | None = None
    day_steps: list[str] | None = None

    @property
    def refresh(self) -> str | None:
        """The refresh steps as one readable text (None for what is not a materialized view)."""
        return None if self.refresh_steps is None else ";\n".join(self.refresh_steps)
