"""`flu-monitor ingest`: topic flu_cases -> the raw table in PostgreSQL, exactly once.

The local stand-in for Redshift streaming ingestion. Every record is stored as it came
(partition, offset, timestamp, key, value bytes); classifying it (valid, malformed, oversized,
contract violation) is the warehouse SQL's job, so a bad record never stops ingestion.

Exactly once without Kafka's help: the reader joins no consumer group and commits nothing to
Kafka. Each batch's rows and the partitions' next offsets are written in ONE PostgreSQL
transaction, and the reader is assigned the stored offsets on start and after any database
error. Whatever instant the process dies at, the database holds a batch entirely (rows and
offsets) or not at all. A session advisory lock keeps a second ingester off the same topic and
database, and the offset update is conditional on the offsets this process last saw, so even a
second writer could not store a batch twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flu_monitor.messages import Failure, one_line

if TYPE_CHECKING:
    import psycopg

    from flu_monitor.kafka_client import PartitionReader

log = logging.getLogger("flu_monitor.ingest")
PROGRESS_SECONDS = 10
DATABASE_GONE_SECONDS = 120.0  # give up (exit 1) when the database stays unreachable this long

OFFSETS_DDL = """
CREATE TABLE IF NOT EXISTS flu_ingest_offsets (
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition)
)"""

# One statement moves every partition of a batch forward, only from the offsets we last stored.
ADVANCE_SQL = """
UPDATE flu_ingest_offsets AS o
SET next_offset = v.next_offset, updated_at = now()
FROM unnest(%s::integer[], %s::bigint[], %s::bigint[]) AS v(kafka_partition, expected, next_offset)
WHERE o.topic = %s AND o.kafka_partition = v.kafka_partition AND o.next_offset = v.expected"""


class IngestError(Failure):
    """The ingester cannot run (another one holds the topic, the topic never appeared...)."""


class OffsetConflict(RuntimeError):
    """The stored offsets moved under us: the batch was rolled back; resynchronise."""


def stored_offsets(conn, topic: str) -> dict[int, int]:
    rows = conn.execute(
        "SELECT kafka_partition, next_offset FROM flu_ingest_offsets WHERE topic = %s", (topic,)
    ).fetchall()
    return dict(rows)


def records_stored(database_url: str, topic: str) -> int:
    """Records of `topic` the ingester has stored in this database so far (0 before its first
    start): the sum of its partitions' next offsets. How `up` follows its progress."""
    from flu_monitor import pgconnect

    with pgconnect.connect(database_url, 5) as conn:
        (exists,) = conn.execute("SELECT to_regclass('flu_ingest_offsets')").fetchone() or (None,)
        if exists is None:
            return 0
        return sum(stored_offsets(conn, topic).values())


@dataclass
class Stats:
    records: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    reported: int = 0
    reported_at: float = field(default_factory=time.monotonic)


class Ingester:
    """Consumes one topic (all its partitions, manually assigned) into PostgreSQL.

    kafka_conf: settings from flu_monitor.kafka_client.client_config (read with its
    PartitionReader: confluent-kafka, no consumer group, nothing committed to Kafka).
    insert_rows(conn, rows): writes raw rows (partition, offset, timestamp in epoch ms, key,
    value) inside the caller's transaction; defaults to the warehouse's insert_raw.
    """

    def __init__(
        self,
        kafka_conf: dict,
        database_url: str,
        topic: str,
        batch_size: int = 20_000,
        poll_ms: int = 100,
        insert_rows: Callable | None = None,
    ):
        self.kafka_conf = kafka_conf
        self.database_url = database_url
        self.topic = topic
        self.batch_size = batch_size
        self.poll_ms = poll_ms
        self.insert_rows = insert_rows or _warehouse_insert_raw()
        self.positions: dict[int, int] = {}  # partition -> next offset, as stored in PostgreSQL
        self.stats = Stats()
        self.conn: psycopg.Connection | None = None
        self.reader: PartitionReader | None = None
        self._stopping = False

    @property
    def _db(self) -> psycopg.Connection:
        """The database connection, open from run()'s start to its end."""
        assert self.conn is not None, "the ingester is not running"
        return self.conn

    @property
    def _kafka(self) -> PartitionReader:
        """The partition reader, open from run()'s start to its end."""
        assert self.reader is not None, "the ingester is not running"
        return self.reader

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self, *_signal_args) -> None:
        """Finish the batch in hand, then return from run() (safe in a signal handler)."""
        self._stopping = True

    def run(self, topic_timeout_s: float = 60.0) -> Stats:
        from flu_monitor import kafka_client

        self._connect_database()
        self.reader = kafka_client.PartitionReader(
            self.kafka_conf, self.topic, fetch_wait_ms=self.poll_ms
        )
        try:
            self._assign(self._wait_for_partitions(topic_timeout_s))
            next_check = time.monotonic() + PROGRESS_SECONDS
            while not self._stopping:
                self.step()
                if time.monotonic() >= next_check:
                    self._periodic_check()
                    next_check = time.monotonic() + PROGRESS_SECONDS
        finally:
            self.close()
        return self.stats

    def _periodic_check(self) -> None:
        """Pick up partitions added to the topic since, and print a progress line."""
        import psycopg

        try:
            self._assign(self._partitions())
        except psycopg.Error as exc:
            self._recover(exc)
        self._report()

    def _recover(self, exc: Exception) -> None:
        log.warning("database: %s: %s; resuming from the stored offsets", type(exc).__name__, exc)
        self._resync()

    def _report(self) -> None:
        """A progress line: records stored, rate since the last line, records still to read."""
        now = time.monotonic()
        done = self.stats.records - self.stats.reported
        rate = done / max(now - self.stats.reported_at, 1e-9)
        ends = self._kafka.end_offsets_seen()
        lag = sum(end - self.positions[p] for p, end in ends.items() if p in self.positions)
        log.info(
            "%d records stored (%.0f/s), %d behind the topic end", self.stats.records, rate, lag
        )
        self.stats.reported, self.stats.reported_at = self.stats.records, now

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- one batch ---------------------------------------------------------------------------

    def step(self) -> int:
        """Poll one batch and store it with its offsets in one transaction; records stored."""
        import psycopg

        rows, errors = self._kafka.read(self.batch_size, self.poll_ms / 1000)
        for error in errors:  # broker restarting...: the client reconnects by itself
            log.warning("kafka: %s", error)
        if not rows:
            return 0
        advance = {}
        for partition, offset, *_ in rows:  # in offset order within a partition
            advance[partition] = offset + 1
        try:
            self._store(rows, advance)
        except (psycopg.Error, OffsetConflict) as exc:
            self._recover(exc)
            return 0
        self.stats.records += len(rows)
        self.stats.batches += 1
        return len(rows)

    def _store(self, rows: list[tuple], advance: dict[int, int]) -> None:
        partitions = sorted(advance)
        with self._db.transaction():
            self.insert_rows(self._db, rows)
            cur = self._db.execute(
                ADVANCE_SQL,
                (
                    partitions,
                    [self.positions[p] for p in partitions],
                    [advance[p] for p in partitions],
                    self.topic,
                ),
            )
            if cur.rowcount != len(partitions):
                raise OffsetConflict(f"stored offsets of {self.topic} changed under this ingester")
        self.positions.update(advance)

    # -- database and partitions -------------------------------------------------------------

    def _connect_database(self) -> None:
        from flu_monitor import pgconnect

        self.conn = conn = pgconnect.connect(
            self.database_url, 10, application_name="flu-monitor ingest"
        )
        conn.autocommit = True
        (held,) = conn.execute(
            "SELECT pg_try_advisory_lock(hashtext('flu-monitor ingest ' || %s))", (self.topic,)
        ).fetchone() or (False,)
        if not held:
            conn.close()
            raise IngestError(
                f"another ingester is already consuming {self.topic} into this database"
            )
        conn.execute(OFFSETS_DDL)
        conn.autocommit = False

    def _resync(self) -> None:
        """After a failed transaction: reconnect if needed and seek back to the stored offsets."""
        import psycopg

        deadline = time.monotonic() + DATABASE_GONE_SECONDS
        while not self._stopping:
            try:
                if self._db.closed or self._db.broken:
                    self._connect_database()
                else:
                    self._db.rollback()
                self._assign(set(self.positions), force=True)
                return
            except psycopg.Error as exc:
                if time.monotonic() > deadline:
                    raise IngestError(
                        f"the database stayed unreachable for {DATABASE_GONE_SECONDS:.0f} s: "
                        f"{one_line(exc)}"
                    ) from None
                log.warning("database unavailable (%s); retrying in 1 s", one_line(exc))
                time.sleep(1)

    def _partitions(self) -> set[int]:
        from flu_monitor.kafka_client import KafkaUnavailable

        try:
            return self._kafka.partitions()
        except KafkaUnavailable as exc:
            log.warning("kafka: %s while listing partitions", exc)
            return set(self.positions)

    def _wait_for_partitions(self, timeout_s: float) -> set[int]:
        deadline = time.monotonic() + timeout_s
        while not self._stopping:
            partitions = self._partitions()
            if partitions:
                return partitions
            if time.monotonic() > deadline:
                raise IngestError(f"topic {self.topic} does not exist (waited {timeout_s:.0f} s)")
            time.sleep(0.5)
        return set()

    def _assign(self, partitions: set[int], force: bool = False) -> None:
        """Assign `partitions` (plus any already held) and seek each to its stored offset.

        A partition seen for the first time starts at its earliest offset, as a Redshift
        streaming view's first refresh does; that starting point is stored at once.
        """
        partitions = partitions | set(self.positions)
        if partitions == set(self.positions) and not force:
            return
        stored = stored_offsets(self._db, self.topic)
        new = sorted(partitions - set(stored))
        if new:
            earliest = self._kafka.earliest_offsets(new)
            with self._db.transaction():
                for partition, offset in earliest.items():
                    self._db.execute(
                        "INSERT INTO flu_ingest_offsets (topic, kafka_partition, next_offset) "
                        "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        (self.topic, partition, offset),
                    )
            stored = stored_offsets(self._db, self.topic)
        self._db.commit()
        self.positions = {p: stored[p] for p in partitions}
        self._kafka.assign(self.positions)
        log.info(
            "assigned %s partitions %s at offsets %s",
            self.topic,
            sorted(partitions),
            self.positions,
        )


def _warehouse_insert_raw() -> Callable:
    from flu_monitor.warehouse.postgres import insert_raw

    return insert_raw
