"""Runtime errors -> click's: every command's one-line error and exit status, in one place.

Runtime modules raise plain exceptions (flu_monitor.messages: Failure for the environment,
BadInput for a value the user gave); commands made with `cls=Command` report them as click does
its own (exit 1, or exit 2 with the usage line and the option named)."""

from __future__ import annotations

from typing import Any

import click

from flu_monitor.messages import BadInput, Failure


class Command(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BadInput as exc:
            if exc.option:
                raise click.BadParameter(str(exc), ctx=ctx, param_hint=exc.option) from None
            raise click.UsageError(str(exc), ctx=ctx) from None
        except Failure as exc:
            raise click.ClickException(str(exc)) from None


class Group(click.Group):
    """A group whose commands (and subgroups) report the runtime's errors as above."""

    command_class = Command
    group_class = type  # subgroups are Groups too
