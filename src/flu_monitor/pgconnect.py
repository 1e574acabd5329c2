"""Connections to a PostgreSQL URL the user gave, waiting as long as the user says.

libpq's own setting bounds the wait: "connect_timeout: Maximum time to wait while connecting, in
seconds ... Zero, negative, or not specified means wait indefinitely. The minimum allowed timeout
is 2 seconds" (PostgreSQL docs, libpq-connect.html, Parameter Key Words), set in the URL
(`postgresql://host/db?connect_timeout=3`) or by the environment variable PGCONNECT_TIMEOUT. Our
commands have defaults of their own (a server that never answers must fail the command, not hang
it), but psycopg's keyword arguments override the URL's parameters (psycopg.conninfo.make_conninfo:
"kwargs: Parameters overriding the ones specified in conninfo"): passed as connect_timeout=, a
default would silently replace the user's value. So the default applies only when the user set
none, in the URL or the environment."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

ENV = "PGCONNECT_TIMEOUT"
MIN_S = 2  # libpq's minimum: a value of 1 waits 2 s


def _user_value(url: str) -> str | None:
    """The connect_timeout the user wrote for `url` (its URL parameter, else PGCONNECT_TIMEOUT),
    as written; None when none is set or the URL cannot be read (connecting reports it)."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        value = conninfo_to_dict(url).get("connect_timeout")
    except ProgrammingError:
        return None
    return os.environ.get(ENV) if value is None else str(value)


def user_timeout(url: str) -> float | None:
    """The user's connect_timeout for `url` in seconds: math.inf for "wait indefinitely" (0 or
    less), None when none is set or it is not a number (libpq reports that when connecting)."""
    value = _user_value(url)
    if value is None:
        return None
    try:
        seconds = int(float(value))
    except ValueError:
        return None
    return math.inf if seconds <= 0 else max(seconds, MIN_S)


def connect(url: str, default_s: int, **kwargs: Any) -> psycopg.Connection[Any]:
    """psycopg.connect(url, **kwargs) waiting at most the user's connect_timeout, or default_s
    when the user set none."""
    import psycopg

    if _user_value(url) is None:  # a value libpq cannot read is its to report, not ours to replace
        kwargs["connect_timeout"] = default_s
    return psycopg.connect(url, **kwargs)


def wait_s(url: str, default_s: float) -> float:
    """How long to keep trying a server that is not up yet (it may be starting alongside us): the
    user's connect_timeout, else default_s."""
    timeout = user_timeout(url)
    return default_s if timeout is None else timeout
