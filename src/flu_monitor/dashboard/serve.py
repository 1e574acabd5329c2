"""`flu-monitor dashboard`: serve the local dashboard over HTTP on this machine."""

import click


@click.command("dashboard")
@click.option(
    "--database-url",
    envvar="FLU_MONITOR_DATABASE_URL",
    required=True,
    help="PostgreSQL holding the analytics views (env FLU_MONITOR_DATABASE_URL).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(0, 65535))
def command(database_url: str, host: str, port: int) -> None:
    """Serve the dashboard described by quicksight/dashboard.yaml (no internet needed)."""
    import logging

    from flu_monitor.dashboard.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in the log
    click.echo(f"dashboard: http://{host}:{port}/", err=True)
    create_app(database_url).run(host=host, port=port, debug=False)
