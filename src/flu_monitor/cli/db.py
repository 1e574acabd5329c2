"""`flu-monitor db ...`: apply sql/ to PostgreSQL, load raw events, refresh the views.

Every database problem ends the command with one line and exit 1 (a malformed URL or option:
exit 2); connections give up after CONNECT_TIMEOUT_S."""

import functools

import click

from flu_monitor.cli import options, refresh
from flu_monitor.cli.errors import Group
from flu_monitor.messages import one_line

DATABASE_URL = options.database_url_option()


def database_errors(command):
    """Report a database, SQL or file problem in one line (exit 1) instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import psycopg

        from flu_monitor.warehouse import sqlscript
        from flu_monitor.warehouse.objects import TranslationError  # without sqlglot

        try:
            return command(*args, **kwargs)
        except psycopg.errors.UndefinedTable as exc:
            raise click.ClickException(
                f"database: {one_line(exc)} (run `flu-monitor db apply` first)"
            ) from None
        except psycopg.Error as exc:
            raise click.ClickException(f"database: {one_line(exc)}") from None
        except (sqlscript.ScriptError, TranslationError) as exc:
            raise click.ClickException(f"sql/: {one_line(exc)}") from None
        except OSError as exc:
            raise click.ClickException(f"{exc.filename or 'file'}: {exc.strerror}") from None

    return wrapper


@click.group("db", cls=Group)
def command() -> None:
    """The warehouse on PostgreSQL: the same sql/ as Redshift, translated."""


@command.command("apply")
@DATABASE_URL
@click.option("--no-refresh", is_flag=True, help="Do not refresh the views afterwards.")
@database_errors
def apply_cmd(database_url: str, no_refresh: bool) -> None:
    """Create or upgrade every table and view from sql/ (idempotent)."""
    from flu_monitor.warehouse import postgres

    steps = postgres.apply(database_url, refresh_after=not no_refresh)
    created = sorted({s.object_name for s in steps if s.action in ("create", "load")})
    click.echo(
        f"applied sql/: {len(created)} objects created or reloaded"
        + (f" ({', '.join(created)})" if created else " (already up to date)")
    )


@command.command("load-jsonl")
@click.argument("jsonl", type=click.Path(exists=True, dir_okay=False))
@DATABASE_URL
@click.option(
    "--partition",
    default=0,
    show_default=True,
    type=click.IntRange(0, 2**31 - 1),
    help="Synthetic Kafka partition.",
)
@click.option("--refresh/--no-refresh", default=True, show_default=True)
@database_errors
def load_jsonl_cmd(jsonl: str, database_url: str, partition: int, refresh: bool) -> None:
    """Insert each line of JSONL as a raw Kafka record (synthetic partition/offset), as is."""
    from flu_monitor.warehouse import postgres

    count = postgres.load_jsonl(database_url, jsonl, partition=partition)
    click.echo(f"inserted {count} raw records into {postgres.stand_in_table()}")
    if refresh:
        result = postgres.refresh(database_url)
        click.echo(f"refreshed in {result.seconds:.2f} s")


@command.command("refresh")
@DATABASE_URL
@click.option(
    "--every",
    type=refresh.EVERY,
    default=None,
    help="Keep refreshing every N seconds until stopped: the loop of `flu-monitor refresh` "
    "(failures retried for 2 minutes), with a line per refresh.",
)
@database_errors
def refresh_cmd(database_url: str, every: float | None) -> None:
    """Bring the views up to date with the raw records (incremental where possible)."""
    from flu_monitor.warehouse import postgres

    def say(result: postgres.RefreshResult) -> None:
        new = result.rows.get("flu_cases_stream", 0)
        click.echo(f"refreshed in {result.seconds:.2f} s ({new} new records)")

    if every is None:
        say(postgres.refresh(database_url))
    else:
        refresh.run_until_stopped(database_url, every, on_refresh=say)


@command.command("rejected")
@DATABASE_URL
@database_errors
def rejected_cmd(database_url: str) -> None:
    """Count the rejected records by reason."""
    from flu_monitor import pgconnect
    from flu_monitor.warehouse.postgres import CONNECT_TIMEOUT_S

    with pgconnect.connect(database_url, CONNECT_TIMEOUT_S) as conn:
        rows = conn.execute(
            "SELECT reason, records FROM flu_rejected_records ORDER BY records DESC, reason"
        ).fetchall()
    for reason, records in rows:
        click.echo(f"{records:>10}  {reason}")
    if not rows:
        click.echo("no rejected records")
