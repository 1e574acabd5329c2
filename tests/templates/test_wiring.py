"""Root <-> nested wiring: every nested parameter is passed, every passed value is declared, every
nested output the root reads exists, and values flow only by parameters and outputs (no Exports)."""

import dataclasses
import re
from pathlib import Path

import pytest


def _stacks(root):
    return {
        name: resource
        for name, resource in root.resources.items()
        if resource["Type"] == "AWS::CloudFormation::Stack"
    }


def _child(root, nested, resource):
    path = Path(root.path).parent / resource["Properties"]["TemplateURL"]
    return nested[str(path.relative_to(Path(root.path).parent))]


def test_root_has_one_nested_stack_per_concern(root):
    urls = sorted(r["Properties"]["TemplateURL"] for r in _stacks(root).values())
    assert urls == [
        "nested/alerts.yaml",
        "nested/connect.yaml",
        "nested/dashboards.yaml",
        "nested/events.yaml",
        "nested/network.yaml",
        "nested/streaming.yaml",
        "nested/warehouse.yaml",
    ]


def test_root_passes_exactly_the_parameters_each_nested_template_declares(root, nested):
    for name, resource in _stacks(root).items():
        child = _child(root, nested, resource)
        passed = set(resource["Properties"].get("Parameters", {}))
        declared = set(child.parameters)
        assert passed - declared == set(), f"{name} passes parameters {child.name} lacks"
        # Even parameters with defaults are passed: the root owns every setting.
        assert declared - passed == set(), f"{name} leaves {child.name} parameters unset"


def test_root_reads_only_outputs_the_nested_templates_declare(root, nested):
    stacks = _stacks(root)
    children = {name: _child(root, nested, r) for name, r in stacks.items()}
    text = str(root.body)
    reads = re.findall(r"'Fn::GetAtt': \['(\w+)', 'Outputs\.(\w+)'\]", text)
    assert reads, "the root reads no nested output"
    for stack, output in reads:
        assert output in children[stack].body.get("Outputs", {}), f"{stack}.Outputs.{output}"


def test_every_root_parameter_is_used(root):
    used = str(root.body["Resources"]) + str(root.body.get("Rules", {}))
    used += str(root.body.get("Conditions", {}))
    for name in root.parameters:
        assert f"'Ref': '{name}'" in used, f"root parameter {name} is never used"


def test_every_nested_parameter_is_used(nested):
    for template in nested.values():
        used = str(template.body["Resources"]) + str(template.body.get("Conditions", {}))
        used += str(template.body.get("Outputs", {}))
        for name in template.parameters:
            referenced = f"'Ref': '{name}'" in used or f"${{{name}}}" in used
            assert referenced, f"{template.name}: parameter {name} is never used"


def test_values_flow_by_parameters_and_outputs_never_exports(templates):
    for template in templates.values():
        assert "Fn::ImportValue" not in str(template.body), template.name
        for name, output in template.body.get("Outputs", {}).items():
            assert "Export" not in output, f"{template.name}: output {name} is exported"
            assert output.get("Description"), f"{template.name}: output {name} has no Description"


@pytest.mark.parametrize(
    "output",
    [
        "DashboardUrl",
        "QueryEditorUrl",
        "WarehouseEndpoint",
        "WarehouseName",
        "MskClusterArn",
        "TopicName",
    ],
)
def test_root_outputs_what_users_need(root, output):
    assert output in root.body["Outputs"]


def test_dashboards_stack_exists_only_when_enabled(root):
    assert root.resources["DashboardsStack"]["Condition"] == "HasDashboards"
    rule = root.body["Rules"]["DashboardsNeedAnOwner"]
    assert "QuickSightPrincipalArn" in str(rule["Assertions"])


def test_topic_parameters_accept_exactly_what_the_sql_accepts(nested):
    # The SQL core refuses a topic Redshift can't read (upper case, > 128 characters); the
    # templates must refuse the same names at parameter time, not an hour into stack creation.
    from flu_monitor.warehouse import sqlscript

    sql_rule = sqlscript.PLACEHOLDERS["topic"][0]
    for name, template in nested.items():
        param = template.body.get("Parameters", {}).get("TopicName")
        if param:
            assert param["AllowedPattern"] == f"^{sql_rule}$", name


@pytest.mark.parametrize(
    ("source", "created", "absent", "output"),
    [
        ("simulator", "EventsStack", "ConnectStack", "SimulatorLiveFrom"),
        ("datagen", "ConnectStack", "EventsStack", "ConnectorArn"),
    ],
)
def test_event_source_creates_exactly_its_own_stack(root, source, created, absent, output):
    case = dataclasses.replace(root, overrides={"EventSource": source})
    exists = {
        name: case.condition(resource["Condition"]) if "Condition" in resource else True
        for name, resource in root.resources.items()
    }
    assert exists[created] and not exists[absent]
    # Outputs of the absent stack are never read (an output of a stack that does not exist
    # would fail the deployment); the present stack's output is.
    values = case.evaluate(root.body["Outputs"])
    assert absent not in str(values)
    assert f"{created}.Outputs" in str(values[output]["Value"])


def test_simulator_is_the_default_event_source(root):
    assert root.parameters["EventSource"]["Default"] == "simulator"
    assert root.parameters["EventSource"]["AllowedValues"] == ["simulator", "datagen"]
    events = root.resources["EventsStack"]["Properties"]["Parameters"]
    for name in ("Scenario", "Seed", "Speed", "BackfillDays"):
        assert events[name] == {"Ref": f"Simulator{name}"}
