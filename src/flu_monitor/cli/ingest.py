"""`flu-monitor ingest`: the options of flu_monitor.local.ingest's Ingester, and its errors as one
line (exit 1)."""

import logging
import signal
import time

import click

from flu_monitor.cli import options
from flu_monitor.cli.errors import Command
from flu_monitor.messages import one_line


@click.command("ingest", cls=Command)
@options.bootstrap_servers_option()
@options.database_url_option()
@options.topic_option("Topic to consume.")
@click.option("--batch-size", default=20_000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option(
    "--poll-ms",
    default=100,
    show_default=True,
    type=click.IntRange(1, 60_000),
    help="Longest wait for records before storing what arrived.",
)
def command(bootstrap_servers, database_url, topic, batch_size, poll_ms) -> None:
    """Consume the topic into PostgreSQL's raw table, exactly once (the streaming-ingestion
    stand-in). Stops cleanly on SIGINT/SIGTERM; a kill -9 loses and duplicates nothing. Exits 1
    when the database cannot be reached at start or stays unreachable for 2 minutes."""
    import psycopg

    from flu_monitor import kafka_client
    from flu_monitor.local.ingest import Ingester

    logging.basicConfig(level=logging.INFO, format="%(asctime)s ingest: %(message)s")
    ingester = Ingester(
        kafka_client.client_config(bootstrap_servers),
        database_url,
        topic,
        batch_size=batch_size,
        poll_ms=poll_ms,
    )
    signal.signal(signal.SIGTERM, ingester.stop)
    signal.signal(signal.SIGINT, ingester.stop)
    try:
        stats = ingester.run()
    except kafka_client.KafkaUnavailable as exc:  # IngestError is a Failure: exit 1 as well
        raise click.ClickException(str(exc)) from None
    except psycopg.Error as exc:
        raise click.ClickException(f"database: {one_line(exc)}") from None
    elapsed = time.monotonic() - stats.started
    click.echo(f"ingest: stopped after {stats.records} records in {elapsed:.0f} s", err=True)
