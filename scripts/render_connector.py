#!/usr/bin/env python3
"""Render connector/ into nested/connect.yaml: one source of truth for the MSK Connect connector.

connector/ (owned by the stream side) holds the connector configuration, the worker
configuration and the plugin pin. CloudFormation cannot read files, so this script copies them
into the two GENERATED regions of nested/connect.yaml:

  * the ``Mappings`` block: plugin pin (version, URL, SHA-256, file name) and worker properties;
  * the ``ConnectorConfiguration`` of the Connector resource (a flat key -> string map).

    python scripts/render_connector.py           # rewrite nested/connect.yaml
    python scripts/render_connector.py --check   # exit 1 if the committed template is stale

tests/templates/test_connector_sync.py runs --check's logic, so a stale template fails CI.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONNECTOR_DIR = ROOT / "connector"
TEMPLATE = ROOT / "nested" / "connect.yaml"
KAFKA_CONNECT_VERSION = "3.7.x"  # MSK Connect's newest Kafka Connect runtime

MAPPINGS_BEGIN = "# BEGIN GENERATED mappings"
MAPPINGS_END = "# END GENERATED mappings"
CONFIG_BEGIN = "# BEGIN GENERATED connector configuration"
CONFIG_END = "# END GENERATED connector configuration"


@dataclass(frozen=True)
class Connector:
    config: dict[str, str]
    worker_properties: str
    plugin: dict[str, str]  # version, url, sha256, file_name


def parse_properties(text: str) -> dict[str, str]:
    """Java .properties as MSK Connect reads them: key=value or key: value, # and ! comments."""
    result: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)$", line)
        if not match:
            raise ValueError(f"line {number}: expected key=value, got {raw!r}")
        key, value = match.groups()
        if key in result:
            raise ValueError(f"line {number}: duplicate key {key!r}")
        result[key] = value
    return result


def _one(directory: Path, patterns: list[str], what: str) -> Path:
    found = sorted({p for pattern in patterns for p in directory.glob(pattern)})
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise FileNotFoundError(
            f"{directory}: expected exactly one {what} ({patterns}); found {names}"
        )
    return found[0]


def _load_mapping(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".properties":
        return parse_properties(text)
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a key -> value mapping")
    return data


def _plugin_pin(path: Path) -> dict[str, str]:
    data = {k.lower().replace("-", "_"): v for k, v in _load_mapping(path).items()}
    data = data.get("plugin", data) if isinstance(data.get("plugin"), dict) else data
    pin = {
        "version": str(data.get("version", "")),
        "url": str(data.get("url") or data.get("release_url") or ""),
        "sha256": str(data.get("sha256", "")).lower(),
    }
    missing = [k for k, v in pin.items() if not v]
    if missing:
        raise ValueError(f"{path}: plugin pin lacks {', '.join(missing)}")
    if not re.fullmatch(r"[0-9a-f]{64}", pin["sha256"]):
        raise ValueError(f"{path}: sha256 must be 64 hex digits, not {pin['sha256']!r}")
    pin["file_name"] = str(data.get("file_name") or pin["url"].rsplit("/", 1)[-1])
    return pin


def load_connector(directory: Path = CONNECTOR_DIR) -> Connector:
    config_path = _one(directory, ["connector.properties", "connector.json"], "connector config")
    worker_path = _one(directory, ["worker.properties"], "worker config")
    pin_path = _one(directory, ["plugin.json", "plugin.yaml", "plugin.properties"], "plugin pin")
    config = {str(k): str(v) for k, v in _load_mapping(config_path).items()}
    return Connector(config, worker_path.read_text(encoding="utf-8"), _plugin_pin(pin_path))


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def render_mappings(connector: Connector) -> str:
    pin = connector.plugin
    worker = connector.worker_properties.rstrip("\n")
    # Worker configuration is create-only: a content hash in its name lets a change replace it.
    worker_hash = hashlib.sha256(worker.encode()).hexdigest()[:12]
    lines = [
        "Mappings:",
        "  Datagen:",
        "    Plugin:",
        f"      Version: {_quoted(pin['version'])}",
        f"      Url: {_quoted(pin['url'])}",
        f"      Sha256: {_quoted(pin['sha256'])}",
        f"      FileName: {_quoted(pin['file_name'])}",
        f"      ContentType: {'ZIP' if pin['file_name'].endswith('.zip') else 'JAR'}",
        "    Worker:",
        f"      ConfigurationName: {_quoted('worker-' + worker_hash)}",
        f"      KafkaConnectVersion: {_quoted(KAFKA_CONNECT_VERSION)}",
        "      Properties: |",
        *[f"        {line}".rstrip() for line in worker.splitlines()],
    ]
    return "\n".join(lines)


def render_config(connector: Connector, indent: str) -> str:
    lines = [f"{indent}ConnectorConfiguration:"]
    lines += [f"{indent}  {_quoted(k)}: {_quoted(v)}" for k, v in sorted(connector.config.items())]
    return "\n".join(lines)


def _replace_region(text: str, begin: str, end: str, body_for_indent) -> str:
    pattern = re.compile(
        rf"^([ \t]*){re.escape(begin)}[^\n]*\n.*?^[ \t]*{re.escape(end)}[^\n]*$", re.M | re.S
    )
    match = pattern.search(text)
    if not match:
        raise ValueError(f"{TEMPLATE.name}: region {begin!r} ... {end!r} not found")
    indent = match.group(1)
    header = match.group(0).splitlines()[0]
    replacement = (
        f"{header}\n{body_for_indent(indent)}\n{indent}{end} (scripts/render_connector.py)"
    )
    return text[: match.start()] + replacement + text[match.end() :]


def render(template_text: str, connector: Connector) -> str:
    text = _replace_region(
        template_text, MAPPINGS_BEGIN, MAPPINGS_END, lambda _i: render_mappings(connector)
    )
    return _replace_region(text, CONFIG_BEGIN, CONFIG_END, lambda i: render_config(connector, i))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if nested/connect.yaml is stale")
    args = parser.parse_args(argv)
    current = TEMPLATE.read_text(encoding="utf-8")
    rendered = render(current, load_connector())
    if args.check:
        if rendered != current:
            print(f"{TEMPLATE.relative_to(ROOT)} is stale: run `make render`", file=sys.stderr)
            return 1
        print(f"{TEMPLATE.relative_to(ROOT)} matches connector/")
        return 0
    if rendered != current:
        TEMPLATE.write_text(rendered, encoding="utf-8")
        print(f"rendered connector/ into {TEMPLATE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
