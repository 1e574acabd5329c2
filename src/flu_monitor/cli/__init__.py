"""`flu-monitor`: the command line, all of it in this package.

One module per command (or group) turns options into calls of the runtime modules (local/,
simulator/, warehouse/, alerts/, dashboard/, aws/), which know nothing of click; shared options
are declared once in options.py, and errors.py maps the runtime's exceptions to one line and an
exit status. Heavy imports (kafka, dash, psycopg) stay inside the command functions so
`flu-monitor --help` stays fast.
"""

import click

from flu_monitor import __version__
from flu_monitor.cli import aws, dashboard, db, ingest, notify, refresh, simulate, up
from flu_monitor.cli.errors import Group


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
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


for stage in (simulate, db, ingest, refresh, notify, dashboard, up, aws):
    main.add_command(stage.command)
