"""The user's connect_timeout (URL parameter, else PGCONNECT_TIMEOUT) bounds our PostgreSQL
connections; our defaults apply only when the user set none."""

import math
import socket
import time

import psycopg
import pytest

from flu_monitor import pgconnect

URL = "postgresql://x@127.0.0.1:5/d"


@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        (URL, None, None),
        (URL + "?connect_timeout=7", None, 7),
        (URL, "4", 4),
        (URL + "?connect_timeout=7", "4", 7),  # the URL before the environment, as in libpq
        (URL + "?connect_timeout=1", None, 2),  # libpq's minimum
        (URL + "?connect_timeout=0", None, math.inf),  # "wait indefinitely"
        ("host=127.0.0.1 connect_timeout=3", None, 3),  # a keyword/value string too
        (URL, "soon", None),  # unreadable: connecting reports it
        ("nonsense", None, None),
    ],
)
def test_the_users_timeout_is_read_from_the_url_then_the_environment(
    monkeypatch, url, env, expected
):
    monkeypatch.delenv(pgconnect.ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(pgconnect.ENV, env)
    assert pgconnect.user_timeout(url) == expected
    assert pgconnect.wait_s(url, 15) == (15 if expected is None else expected)


def test_the_urls_connect_timeout_is_not_overridden_by_the_default(monkeypatch):
    """A server that never answers: the URL's 2 s end the wait, not the default 60 s."""
    monkeypatch.delenv(pgconnect.ENV, raising=False)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql://x@127.0.0.1:{silent.getsockname()[1]}/d?connect_timeout=2"
        start = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="timeout"):
            pgconnect.connect(url, 60)
        assert 1.5 < time.monotonic() - start < 30


@pytest.mark.parametrize(("query", "env"), [("?connect_timeout=soon", None), ("", "soon")])
def test_an_unreadable_timeout_is_reported_not_replaced_by_the_default(monkeypatch, query, env):
    """The default would override it (psycopg's keyword arguments win) and hide the typo."""
    monkeypatch.delenv(pgconnect.ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(pgconnect.ENV, env)
    with pytest.raises(psycopg.ProgrammingError, match="connect_timeout: 'soon'"):
        pgconnect.connect(URL + query, 60)
