"""Option types shared by the commands: every value is checked before anything starts.

A bad value ends the command with click's usage error (exit 2) naming the option and the rule:
numbers must be finite and within sane bounds, names and addresses well formed. Nothing here
connects anywhere; psycopg is imported only to parse a database URL.
"""

from __future__ import annotations

import math
import re
import urllib.parse

import click

from flu_monitor.messages import one_line

# Kafka's own rule for topic names (kafka.common.internals.Topic): 1-249 of these characters.
TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
SERVER = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})")


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and infinities (click's accepts them: nan compares
    false with every bound)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class TopicName(click.ParamType):
    name = "topic"

    def convert(self, value, param, ctx):
        if not TOPIC_NAME.fullmatch(value) or value in (".", ".."):
            self.fail(
                f"{value!r} is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -).", param, ctx
            )
        return value


class BootstrapServers(click.ParamType):
    """host:port[,host:port...], ports 1-65535."""

    name = "host:port[,host:port]"

    def convert(self, value, param, ctx):
        servers = [s.strip() for s in value.split(",")]
        for server in servers:
            match = SERVER.fullmatch(server)
            if not match or not 1 <= int(match["port"]) <= 65535:
                self.fail(f"{server!r} is not host:port (port 1-65535).", param, ctx)
        return ",".join(servers)


class DatabaseUrl(click.ParamType):
    """A libpq connection URL or key=value string that libpq can parse."""

    name = "url"

    def convert(self, value, param, ctx):
        import psycopg

        try:
            parsed = psycopg.conninfo.conninfo_to_dict(value)
        except psycopg.ProgrammingError as exc:
            self.fail(f"not a PostgreSQL connection URL: {one_line(exc)}", param, ctx)
        for port in (parsed.get("port") or "").split(","):
            if port and not (port.isdigit() and 1 <= int(port) <= 65535):
                self.fail(f"not a PostgreSQL connection URL: port {port!r}", param, ctx)
        return value


TOPIC = TopicName()
BOOTSTRAP_SERVERS = BootstrapServers()
DATABASE_URL = DatabaseUrl()
SEED = click.IntRange(0, 2**63 - 1)  # numpy seeds are non-negative


# -- options several commands take: declared once, same environment variable and default ------
DATABASE_URL_ENV = "FLU_MONITOR_DATABASE_URL"
BOOTSTRAP_SERVERS_ENV = "FLU_MONITOR_BOOTSTRAP_SERVERS"
TOPIC_ENV = "FLU_MONITOR_TOPIC"


def database_url_option(required: bool = True, help: str | None = None):
    """--database-url (env FLU_MONITOR_DATABASE_URL)."""
    return click.option(
        "--database-url",
        envvar=DATABASE_URL_ENV,
        show_envvar=True,
        required=required,
        type=DATABASE_URL,
        help=help
        or "PostgreSQL URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres (add "
        "?connect_timeout=N, or set PGCONNECT_TIMEOUT, to wait N s for a connection).",
    )


def bootstrap_servers_option(required: bool = True, help: str | None = None):
    """--bootstrap-servers (env FLU_MONITOR_BOOTSTRAP_SERVERS)."""
    return click.option(
        "--bootstrap-servers",
        envvar=BOOTSTRAP_SERVERS_ENV,
        show_envvar=True,
        required=required,
        type=BOOTSTRAP_SERVERS,
        help=help or "Kafka brokers, host:port[,host:port].",
    )


def _contract_topic(_ctx, _param, value: str | None) -> str:
    """The event contract's topic when none is given (read only when a command runs: the
    contract loads jsonschema, which `--help` does without)."""
    if value is not None:
        return value
    from flu_monitor import contract

    return contract.TOPIC


def topic_option(help: str = "Kafka topic."):
    """--topic (env FLU_MONITOR_TOPIC), the contract's topic by default."""
    return click.option(
        "--topic",
        envvar=TOPIC_ENV,
        show_envvar=True,
        type=TOPIC,
        default=None,
        callback=_contract_topic,
        help=f"{help} [default: the event contract's, flu_cases]",
    )


def webhook_url(value: str | None) -> str | None:
    """An http(s) URL with a host, or a usage error naming the option."""
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{value!r} is not an http(s) URL.", param_hint="--alert-webhook")
    return value


def alert_webhook_option(
    *names: str,
    help: str = "POST each new alert here as JSON (Slack-compatible `text`, docs/alerts.md).",
):
    """--alert-webhook: an http(s) URL, checked before the command starts."""
    return click.option(
        "--alert-webhook",
        *names,
        default=None,
        callback=lambda _ctx, _param, value: webhook_url(value),
        help=help,
    )
