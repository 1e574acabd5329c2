"""`flu-monitor aws preflight`: flu_monitor.aws.preflight's checks, one line each (exit 1 if one
fails)."""

import re

import click

from flu_monitor.cli.errors import Command, Group
from flu_monitor.messages import one_line


@click.command("preflight", cls=Command)
@click.option("--region", required=True, help="Region to deploy to, e.g. us-east-1.")
@click.option("--config-env", help="samconfig.toml profile whose parameters to check.")
@click.option(
    "--parameter-overrides", help='Parameters as for sam deploy: "ClusterType=serverless ...".'
)
def preflight(region: str, config_env: str | None, parameter_overrides: str | None) -> None:
    """Check, read-only, what a deploy to REGION would need (exit 1 if anything fails)."""
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise click.UsageError(f"--region {region!r} is not a Region name like us-east-1")
    from flu_monitor.aws import preflight as preflight_checks  # yaml: only for this command

    params = preflight_checks.resolve_parameters(config_env, parameter_overrides)
    clients = preflight_checks.boto3_clients(region)
    try:
        results = preflight_checks.run_checks(region, params, clients)
    except Exception as exc:  # no credentials, or STS unreachable: nothing else can run
        raise click.ClickException(f"cannot call AWS as you: {one_line(exc)}") from None
    for result in results:
        click.echo(result.line())
    failed = [r for r in results if not r.ok]
    if failed:
        click.echo(f"{len(failed)} of {len(results)} checks failed", err=True)
        raise SystemExit(1)
    click.echo(f"all {len(results)} checks passed")


@click.group("aws", cls=Group)
def command() -> None:
    """AWS deployment helpers (your credentials, read-only)."""


command.add_command(preflight)
