"""The options several commands share are one declaration: same environment variable, same check,
same default, wherever they appear."""

import click
import pytest

from flu_monitor import contract
from flu_monitor.cli import main

SHARED = {
    "database_url": "FLU_MONITOR_DATABASE_URL",
    "bootstrap_servers": "FLU_MONITOR_BOOTSTRAP_SERVERS",
    "topic": "FLU_MONITOR_TOPIC",
}


def commands(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_shared_options_have_one_environment_variable_and_type():
    seen: dict[str, set] = {name: set() for name in SHARED}
    users: dict[str, list[str]] = {name: [] for name in SHARED}
    for path, command in commands(main):
        for param in command.params:
            if param.name in SHARED:
                seen[param.name].add((param.envvar, type(param.type).__name__, param.default))
                users[param.name].append(path)
    for name, envvar in SHARED.items():
        assert len(seen[name]) == 1, (name, seen[name])
        assert next(iter(seen[name]))[0] == envvar
    assert sorted(users["topic"]) == ["ingest", "simulate", "up"]
    assert len(users["database_url"]) == 9  # up, ingest, refresh, notify, dashboard, db x4


def ingest_params(monkeypatch, topic_env: str | None) -> dict:
    if topic_env is None:
        monkeypatch.delenv("FLU_MONITOR_TOPIC", raising=False)
    else:
        monkeypatch.setenv("FLU_MONITOR_TOPIC", topic_env)
    args = ["--bootstrap-servers", "h:9092", "--database-url", "postgresql://x@h/d"]
    return main.commands["ingest"].make_context("ingest", args).params


def test_topic_defaults_to_the_contracts_and_reads_its_variable(monkeypatch):
    assert contract.TOPIC == "flu_cases"
    assert ingest_params(monkeypatch, None)["topic"] == contract.TOPIC
    assert ingest_params(monkeypatch, "other_topic")["topic"] == "other_topic"
    with pytest.raises(click.BadParameter, match="is not a Kafka topic name"):
        ingest_params(monkeypatch, "no spaces")
