"""`flu-monitor`: the command line, all of it in this package.

One module per command (or group) turns options into calls of the runtime modules (local/,
simulator/, warehouse/, alerts/, dashboard/, aws/), which know nothing of click; shared options
are declared once in options.py, and errors.py maps the runtime's exceptions to one line and an
exit status. Heavy imports (kafka, dash, psycopg) stay inside the command functions so
`flu-monitor --help` stays fast, and a command's module is imported only when that command is
looked up (LazyCommands): `flu-monitor notify` does not load `up`'s or `simulate`'s.
"""

import importlib
from collections.abc import Iterator, MutableMapping

import click

from flu_monitor import __version__
from flu_monitor.cli.errors import Group

# The commands (and groups) of flu_monitor.cli.<name>, each that module's `command`.
STAGES = ("simulate", "db", "ingest", "refresh", "notify", "dashboard", "up", "aws")


class LazyCommands(MutableMapping[str, click.Command]):
    """The group's commands by name (click takes any mutable mapping), each stage's module
    imported on its first lookup: a process pays for the command it runs, not for all of them
    (~20-30 ms of each CLI start)."""

    def __init__(self, stages: tuple[str, ...]) -> None:
        self._stages = stages
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded and name in self._stages:
            command = importlib.import_module(f"flu_monitor.cli.{name}").command
            assert command.name == name, (command.name, name)
            self._loaded[name] = command
        return self._loaded[name]  # KeyError for a name that is neither

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("commands are not removed")

    def __iter__(self) -> Iterator[str]:
        yield from self._stages
        yield from (name for name in self._loaded if name not in self._stages)

    def __len__(self) -> int:
        return len(set(self._stages) | set(self._loaded))


@click.group(
    cls=Group,
    commands=LazyCommands(STAGES),
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
