"""`flu-monitor db ...`: apply sql/ to PostgreSQL, load raw events, refresh the views."""

import click

DATABASE_URL = click.option(
    "--database-url",
    envvar="FLU_MONITOR_DATABASE_URL",
    required=True,
    help="PostgreSQL URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres "
    "(env FLU_MONITOR_DATABASE_URL).",
)


@click.group("db")
def db() -> None:
    """The warehouse on PostgreSQL: the same sql/ as Redshift, translated."""


@db.command("apply")
@DATABASE_URL
@click.option("--no-refresh", is_flag=True, help="Do not refresh the views afterwards.")
def apply_cmd(database_url: str, no_refresh: bool) -> None:
    """Create or upgrade every table and view from sql/ (idempotent)."""
    from flu_monitor.warehouse import local

    steps = local.apply(database_url, refresh_after=not no_refresh)
    created = sorted({s.object_name for s in steps if s.action in ("create", "load")})
    click.echo(
        f"applied sql/: {len(created)} objects created or reloaded"
        + (f" ({', '.join(created)})" if created else " (already up to date)")
    )


@db.command("load-jsonl")
@click.argument("jsonl", type=click.Path(exists=True, dir_okay=False))
@DATABASE_URL
@click.option("--partition", default=0, show_default=True, help="Synthetic Kafka partition.")
@click.option("--refresh/--no-refresh", default=True, show_default=True)
def load_jsonl_cmd(jsonl: str, database_url: str, partition: int, refresh: bool) -> None:
    """Insert each line of JSONL as a raw Kafka record (synthetic partition/offset), as is."""
    from flu_monitor.warehouse import local

    count = local.load_jsonl(database_url, jsonl, partition=partition)
    click.echo(f"inserted {count} raw records into {local.stand_in_table()}")
    if refresh:
        result = local.refresh(database_url)
        click.echo(f"refreshed in {result.seconds:.2f} s")


@db.command("refresh")
@DATABASE_URL
@click.option("--every", type=float, default=None, help="Keep refreshing every N seconds.")
def refresh_cmd(database_url: str, every: float | None) -> None:
    """Bring the views up to date with the raw records (incremental where possible)."""
    import time

    from flu_monitor.warehouse import local

    while True:
        result = local.refresh(database_url)
        new = result.rows.get("flu_cases_stream", 0)
        click.echo(f"refreshed in {result.seconds:.2f} s ({new} new records)")
        if every is None:
            return
        time.sleep(every)


@db.command("rejected")
@DATABASE_URL
def rejected_cmd(database_url: str) -> None:
    """Count the rejected records by reason."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT reason, records FROM flu_rejected_records ORDER BY records DESC, reason"
        ).fetchall()
    for reason, records in rows:
        click.echo(f"{records:>10}  {reason}")
    if not rows:
        click.echo("no rejected records")
