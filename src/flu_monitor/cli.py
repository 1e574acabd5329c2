"""`flu-monitor`: one command per pipeline stage.

Each stage module owns its click command; this file only assembles them. Stage modules keep heavy
imports (kafka, dash, psycopg) inside their command functions so `flu-monitor --help` stays fast.
"""

import click

from flu_monitor import __version__
from flu_monitor.alerts import command as notify
from flu_monitor.aws import preflight
from flu_monitor.dashboard import serve as dashboard
from flu_monitor.local import ingest, refresher, up
from flu_monitor.simulator.command import simulate
from flu_monitor.warehouse.cli import db


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="flu-monitor")
def main() -> None:
    """Flu outbreak monitoring for NY, NJ and PA (synthetic data).

    Events flow simulate -> Kafka -> ingest -> PostgreSQL (the same SQL as Redshift) -> dashboard.
    `flu-monitor up` runs the whole pipeline on this machine.
    """


@main.command("validate")
@click.argument("jsonl", type=click.File("rb"))
def validate_cmd(jsonl) -> None:
    """Check each line of a JSONL file against the event contract (exit 2 at the first bad one,
    including a line that is not UTF-8)."""
    import json

    from flu_monitor import contract

    count = 0
    for lineno, raw in enumerate(jsonl, 1):
        try:
            contract.validate(json.loads(raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise click.UsageError(
                f"{jsonl.name}:{lineno}: not UTF-8 (byte {exc.start + 1} of the line)"
            ) from None
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            raise click.UsageError(f"{jsonl.name}:{lineno}: {exc}") from None
        count += 1
    click.echo(f"{count} events conform to flu_case schema {contract.SCHEMA_VERSION}")


main.add_command(simulate)
main.add_command(db)
for stage in (ingest, refresher, notify, dashboard, up):
    main.add_command(stage.command)
main.add_command(preflight.group)
