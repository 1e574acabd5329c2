"""`flu-monitor dashboard`: serve the local dashboard over HTTP on this machine."""

import click

from flu_monitor.cli import options
from flu_monitor.cli.errors import Command
from flu_monitor.messages import one_line


@click.command("dashboard", cls=Command)
@options.database_url_option()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535))
def command(database_url: str, host: str, port: int) -> None:
    """Serve the dashboard described by quicksight/dashboard.yaml (no internet needed)."""
    _check_can_listen(host, port)  # before dash and plotly load: a taken port fails at once
    import logging

    from flu_monitor.dashboard.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in the log
    app = create_app(database_url)
    click.echo(f"dashboard: http://{host}:{port}/", err=True)
    try:
        # werkzeug's server sets SO_REUSEADDR: a quick restart gets the same port back.
        app.run(host=host, port=port, debug=False)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _check_can_listen(host: str, port: int) -> None:
    """Bind once the way the server will (SO_REUSEADDR), so a taken port is one line here rather
    than werkzeug's several and its exit."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or one_line(exc)}"
        ) from None
