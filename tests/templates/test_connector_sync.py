"""nested/connect.yaml carries connector/ verbatim: one source of truth for MSK Connect."""

import json
import shutil

import pytest
import render_connector
import yaml


def _mappings_and_config(text):
    body = yaml.load(text, Loader=_Loader)
    connector = body["Resources"]["Connector"]["Properties"]
    return body["Mappings"]["Datagen"], connector["ConnectorConfiguration"]


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, tag, node: None)


def test_committed_template_matches_connector_dir():
    current = render_connector.TEMPLATE.read_text(encoding="utf-8")
    rendered = render_connector.render(current, render_connector.load_connector())
    assert rendered == current, "nested/connect.yaml is stale: run `make render`"


def test_template_holds_the_connector_configuration_exactly():
    connector = render_connector.load_connector()
    datagen, config = _mappings_and_config(render_connector.TEMPLATE.read_text(encoding="utf-8"))
    assert config == connector.config
    assert all(isinstance(v, str) for v in config.values())
    assert datagen["Plugin"]["Sha256"] == connector.plugin["sha256"]
    assert datagen["Plugin"]["Url"] == connector.plugin["url"]
    assert datagen["Worker"]["Properties"].strip() == connector.worker_properties.strip()


def test_connector_writes_the_topic_the_root_creates(root):
    topic = root.resources["StreamingStack"]["Properties"]["Parameters"]["TopicName"]
    connector = render_connector.load_connector()
    topics = {key.split(".")[1] for key in connector.config if key.startswith(("genk", "genv"))}
    assert topics == {topic}


def test_a_changed_connector_dir_makes_the_template_stale(tmp_path):
    copy = tmp_path / "connector"
    shutil.copytree(render_connector.CONNECTOR_DIR, copy)
    config_path = copy / "connector.json"
    config = json.loads(config_path.read_text())
    config["global.throttle.ms"] = "1234"
    config_path.write_text(json.dumps(config))
    current = render_connector.TEMPLATE.read_text(encoding="utf-8")
    rendered = render_connector.render(current, render_connector.load_connector(copy))
    assert rendered != current
    assert '"global.throttle.ms": "1234"' in rendered
    # Rendering is idempotent: rendering the rendered text changes nothing.
    assert render_connector.render(rendered, render_connector.load_connector(copy)) == rendered


def test_worker_configuration_name_follows_its_content(tmp_path):
    copy = tmp_path / "connector"
    shutil.copytree(render_connector.CONNECTOR_DIR, copy)
    before = render_connector.render_mappings(render_connector.load_connector(copy))
    with (copy / "worker.properties").open("a") as handle:
        handle.write("producer.batch.size=32768\n")
    after = render_connector.render_mappings(render_connector.load_connector(copy))
    name = [line for line in before.splitlines() if "ConfigurationName" in line]
    assert name and name[0] not in after  # a create-only change gets a new resource name


def test_bad_plugin_pin_is_rejected_with_the_reason(tmp_path):
    copy = tmp_path / "connector"
    shutil.copytree(render_connector.CONNECTOR_DIR, copy)
    pin = json.loads((copy / "plugin.json").read_text())
    pin["sha256"] = "not-a-hash"
    (copy / "plugin.json").write_text(json.dumps(pin))
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits"):
        render_connector.load_connector(copy)


def test_properties_parser_rejects_duplicates():
    assert render_connector.parse_properties("a=1\n# c\nb: two words\n") == {
        "a": "1",
        "b": "two words",
    }
    with pytest.raises(ValueError, match="duplicate key 'a'"):
        render_connector.parse_properties("a=1\na=2\n")
