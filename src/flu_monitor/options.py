"""Option types shared by the commands: every value is checked before anything starts.

A bad value ends the command with click's usage error (exit 2) naming the option and the rule:
numbers must be finite and within sane bounds, names and addresses well formed. Nothing here
connects anywhere; psycopg is imported only to parse a database URL.
"""

from __future__ import annotations

import math
import re

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
