"""`up` keeps the dashboard on its port across quick restarts."""

import socket
import time

import pytest

from flu_monitor.local import up


def test_a_port_in_time_wait_is_free_for_the_dashboard():
    """After a restart the old server's connections sit in TIME-WAIT on its port for a minute. A
    probe without SO_REUSEADDR (what `up` used to do) calls the port taken and moves the
    dashboard elsewhere; the server itself (werkzeug, SO_REUSEADDR) could bind it fine."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server closes first: its side of the connection waits
        time.sleep(0.1)
        client.close()
    time.sleep(0.1)
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # TIME-WAIT holds the port for a plain bind
    assert up._port_free(port)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert not up._port_free(listening.getsockname()[1])  # a live server still counts
