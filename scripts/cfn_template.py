"""Read the CloudFormation templates and evaluate their intrinsic functions with sample values.

Used by scripts/lint_iam_policies.py (parliament needs concrete policy JSON) and by the template
tests (tests/templates/). Evaluation is deliberately small: Ref, Fn::GetAtt, Fn::Sub, Fn::Join,
Fn::Select, Fn::Split, Fn::If, Fn::FindInMap, Fn::Base64, AWS::NoValue. A Ref or GetAtt resolves to
a realistic value of the referenced resource type (an ARN of the right service and shape), so
that parliament can check every action against the resource it is granted on.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROOT_TEMPLATE = ROOT / "template.yaml"
NESTED_DIR = ROOT / "nested"

ACCOUNT = "123456789012"
UUID = "1a2b3c4d-0000-4000-8000-000000000000"
CLUSTER = f"flu-1a2b3c4d/{UUID}"
REGION = "us-east-1"
PARTITION = "aws"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "flu-monitor-StreamingStack-1A2B3C",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/flu/{UUID}",
}

# What Ref returns for each resource type, {name} being a stand-in physical name.
REF_SAMPLES = {
    "AWS::MSK::Cluster": f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/{CLUSTER}-2",
    "AWS::MSK::ServerlessCluster": f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/{CLUSTER}-s2",
    "AWS::MSK::Configuration": f"arn:aws:kafka:{REGION}:{ACCOUNT}:configuration/{CLUSTER}-2",
    "AWS::SecretsManager::Secret": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:Admin-AbCdEf",
    "AWS::Redshift::Cluster": "flu-1a2b3c4d",
    "AWS::RedshiftServerless::Namespace": "flu-1a2b3c4d",
    "AWS::RedshiftServerless::Workgroup": "flu-1a2b3c4d",
    "AWS::S3::Bucket": "flu-connect-pluginbucket-abc123",
    "AWS::Logs::LogGroup": "flu-loggroup-abc123",
    "AWS::EC2::SecurityGroup": "sg-0123456789abcdef0",
    "AWS::EC2::VPC": "vpc-0123456789abcdef0",
    "AWS::EC2::Subnet": "subnet-0123456789abcdef0",
    "AWS::Redshift::ClusterSubnetGroup": "flu-subnets",
    "AWS::Redshift::ClusterParameterGroup": "flu-params",
    "AWS::IAM::Role": "flu-role-abc123",
    "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:flu-1a2b3c4d-alerts",
}
GETATT_SAMPLES = {
    (
        "AWS::Logs::LogGroup",
        "Arn",
    ): f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:flu-loggroup-abc123:*",
    ("AWS::IAM::Role", "Arn"): f"arn:aws:iam::{ACCOUNT}:role/flu-role-abc123",
    ("AWS::SQS::Queue", "Arn"): f"arn:aws:sqs:{REGION}:{ACCOUNT}:flu-queue-abc123",
    ("AWS::S3::Bucket", "Arn"): "arn:aws:s3:::flu-connect-pluginbucket-abc123",
    ("AWS::RedshiftServerless::Workgroup", "Workgroup.WorkgroupArn"): (
        f"arn:aws:redshift-serverless:{REGION}:{ACCOUNT}:workgroup/{UUID}"
    ),
    ("AWS::RedshiftServerless::Workgroup", "Workgroup.WorkgroupName"): "flu-1a2b3c4d",
    ("AWS::QuickSight::VPCConnection", "Arn"): (
        f"arn:aws:quicksight:{REGION}:{ACCOUNT}:vpcConnection/flu-1a2b3c4d"
    ),
    ("AWS::EC2::SecurityGroup", "GroupId"): "sg-0123456789abcdef0",
}
# Parameters passed in from the root stack: sample values of the right shape.
PARAMETER_SAMPLES = {
    "ClusterArn": REF_SAMPLES["AWS::MSK::Cluster"],
    "TopicArn": f"arn:aws:kafka:{REGION}:{ACCOUNT}:topic/{CLUSTER}-2/flu_cases",
    "ClusterResourcePath": f"{CLUSTER}-2",
    "AdminSecretArn": REF_SAMPLES["AWS::SecretsManager::Secret"],
    "WarehouseArn": f"arn:aws:redshift-serverless:{REGION}:{ACCOUNT}:workgroup/{UUID}",
    "PrivateSubnetIds": ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc"],
    "DatagenPluginS3Uri": "s3://user-bucket/plugins/datagen.jar",
    "QuickSightPrincipalArn": f"arn:aws:quicksight:{REGION}:{ACCOUNT}:user/default/alice",
    "BootstrapServers": "b-1.flu.kafka.us-east-1.amazonaws.com:9098",
    "ResourceSuffix": "1a2b3c4d",
    "AvailabilityZones": f"{REGION}a,{REGION}b,{REGION}d",
}


class Unresolvable(ValueError):
    """An intrinsic function this evaluator does not model."""


NO_VALUE = object()


@dataclass
class Template:
    path: Path
    body: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT))

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.body.get("Resources", {})

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        return self.body.get("Parameters", {})

    def resources_of(self, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for name, resource in self.resources.items():
            if resource.get("Type") in types:
                yield name, resource

    # ------------------------------------------------------------------ evaluation
    def parameter_value(self, name: str) -> Any:
        spec = self.parameters[name]
        if name in self.overrides:
            return self.overrides[name]
        if name in PARAMETER_SAMPLES:
            return PARAMETER_SAMPLES[name]
        if "Default" in spec and spec["Default"] != "":
            value = spec["Default"]
        elif "AllowedValues" in spec:
            value = spec["AllowedValues"][0]
        else:
            value = f"sample-{name.lower()}"
        return value.split(",") if str(spec.get("Type", "")).startswith("List<") else value

    def evaluate(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.evaluate(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = _INTRINSICS.get(key)
            if handler:
                return handler(self, arg)
            if key.startswith("Fn::"):
                raise Unresolvable(f"{key} is not modelled")
        result = {}
        for key, value in node.items():
            value = self.evaluate(value)
            if value is not NO_VALUE:
                result[key] = value
        return result

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameter_value(name)
        function, _, attribute = name.partition(".")
        if attribute in ("Alias", "Version"):  # SAM AutoPublishAlias references
            qualifier = "live" if attribute == "Alias" else "1"
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:{qualifier}"
        resource_type = self.resources[name]["Type"]
        if resource_type in REF_SAMPLES:
            return REF_SAMPLES[resource_type]
        return f"{name.lower()}-physical-id"

    def _getatt(self, arg: Any) -> Any:
        if isinstance(arg, str):
            arg = arg.split(".", 1)
        resource, attribute = arg[0], arg[1]
        resource_type = self.resources[resource]["Type"]
        if (resource_type, attribute) in GETATT_SAMPLES:
            return GETATT_SAMPLES[(resource_type, attribute)]
        if resource_type == "AWS::Serverless::Function" and attribute == "Arn":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{resource}"
        return f"{resource}.{attribute}"

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        values = {k: self.evaluate(v) for k, v in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return str(values[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                return str(self._getatt(name))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", substitute, text)

    def condition(self, name: str) -> bool:
        return bool(self._condition_value(self.body["Conditions"][name]))

    def _condition_value(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Fn::Equals":
                left, right = (self._condition_value(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._condition_value(arg[0])
            if key == "Fn::And":
                return all(self._condition_value(a) for a in arg)
            if key == "Fn::Or":
                return any(self._condition_value(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
        return self.evaluate(node)

    def _if(self, arg: Any) -> Any:
        name, when_true, when_false = arg
        return self.evaluate(when_true if self.condition(name) else when_false)

    def _find_in_map(self, arg: Any) -> Any:
        names = [self.evaluate(a) for a in arg]
        return self.body["Mappings"][names[0]][str(names[1])][names[2]]

    def refusals(self) -> list[str]:
        """AssertDescription of every Rules assertion these parameter values break: what
        CloudFormation refuses before it creates anything."""
        broken = []
        for rule in self.body.get("Rules", {}).values():
            if "RuleCondition" in rule and not self._rule_value(rule["RuleCondition"]):
                continue
            for assertion in rule["Assertions"]:
                if not self._rule_value(assertion["Assert"]):
                    broken.append(assertion["AssertDescription"])
        return broken

    def _rule_value(self, node: Any) -> Any:
        """Rule-specific intrinsic functions (Fn::Contains, Fn::EachMemberIn ...) and Ref."""
        if isinstance(node, dict) and len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                value = self._ref(arg)
                return [str(v) for v in value] if isinstance(value, list) else str(value)
            if key == "Fn::Equals":
                left, right = (self._rule_value(a) for a in arg)
                return left == right
            if key == "Fn::Not":
                return not self._rule_value(arg[0])
            if key == "Fn::And":
                return all(self._rule_value(a) for a in arg)
            if key == "Fn::Or":
                return any(self._rule_value(a) for a in arg)
            if key == "Fn::Contains":
                return self._rule_value(arg[1]) in self._rule_value(arg[0])
            if key == "Fn::EachMemberIn":
                allowed = self._rule_value(arg[1])
                return all(member in allowed for member in self._rule_value(arg[0]))
            raise Unresolvable(f"{key} is not modelled in Rules")
        if isinstance(node, list):
            return [self._rule_value(item) for item in node]
        return str(node)

    def exists(self, resource: str) -> bool:
        condition = self.resources[resource].get("Condition")
        return condition is None or self.condition(condition)

    def condition_cases(self) -> Iterator[Template]:
        """The template under every combination of values of the parameters its conditions test."""
        names = sorted(
            set(re.findall(r"'Ref': '([A-Za-z0-9]+)'", str(self.body.get("Conditions", {}))))
        )
        choices = [self._candidates(name) for name in names]
        for values in itertools.product(*choices):
            yield Template(self.path, self.body, dict(zip(names, values, strict=True)))

    def _candidates(self, name: str) -> list[Any]:
        spec = self.parameters[name]
        if "AllowedValues" in spec:
            return [str(v) for v in spec["AllowedValues"]]
        return list(
            dict.fromkeys([spec.get("Default", ""), PARAMETER_SAMPLES.get(name, f"sample-{name}")])
        )


def _join(template: Template, arg: Any) -> str:
    separator, items = arg
    return separator.join(str(v) for v in template.evaluate(items))


def _select(template: Template, arg: Any) -> Any:
    index, items = arg
    return template.evaluate(items)[int(template.evaluate(index))]


def _split(template: Template, arg: Any) -> list[str]:
    separator, text = arg
    return str(template.evaluate(text)).split(separator)


_INTRINSICS = {
    "Ref": lambda t, a: t._ref(a),
    "Fn::GetAtt": lambda t, a: t._getatt(a),
    "Fn::Sub": lambda t, a: t._sub(a),
    "Fn::If": lambda t, a: t._if(a),
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::FindInMap": lambda t, a: t._find_in_map(a),
    "Fn::Base64": lambda t, a: str(t.evaluate(a)),
    "Fn::GetAZs": lambda t, a: [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
    "Fn::Cidr": lambda t, a: ["10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24"],
}


def load(path: Path) -> Template:
    from cfnlint.decode import decode  # here: importing cfn-lint takes seconds (sympy)

    body, matches = decode(str(path))
    if matches:
        raise ValueError(f"{path}: {matches[0]}")
    return Template(path, copy.deepcopy(body))


def all_templates() -> list[Template]:
    return [load(ROOT_TEMPLATE)] + [load(p) for p in sorted(NESTED_DIR.glob("*.yaml"))]


@dataclass(frozen=True)
class Policy:
    """One IAM policy document found in a template, as written (unevaluated)."""

    template: Template
    resource: str
    kind: str  # "identity", "trust" or "resource"
    document: dict[str, Any]

    def where(self) -> str:
        return f"{self.template.name}:{self.resource} ({self.kind})"


def policies(template: Template) -> Iterator[Policy]:
    for name, resource in template.resources.items():
        props = resource.get("Properties", {})
        kind = resource.get("Type")
        if kind == "AWS::IAM::Role":
            yield Policy(template, name, "trust", props["AssumeRolePolicyDocument"])
            for inline in props.get("Policies", []):
                yield Policy(template, name, "identity", inline["PolicyDocument"])
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield Policy(template, name, "identity", props["PolicyDocument"])
        elif kind in ("AWS::S3::BucketPolicy",):
            yield Policy(template, name, "resource", props["PolicyDocument"])
        elif kind == "AWS::Serverless::Function" and "Policies" in props:
            raise ValueError(
                f"{template.name}:{name}: give functions an explicit Role, not Policies"
            )


def _references(node: Any, names: set[str]) -> set[str]:
    """Logical IDs of `names` that node refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value.split(".")[0])
            elif key == "Fn::GetAtt":
                target = value.split(".")[0] if isinstance(value, str) else value[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
            found |= _references(value, names)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item, names)
    return found & names


def dependencies(template: Template) -> dict[str, set[str]]:
    """Resource -> the resources it depends on (references and DependsOn): CloudFormation deletes
    a resource only after everything that depends on it is gone."""
    names = set(template.resources)
    graph = {}
    for name, resource in template.resources.items():
        depends_on = resource.get("DependsOn", [])
        depends_on = [depends_on] if isinstance(depends_on, str) else depends_on
        body = {k: v for k, v in resource.items() if k != "DependsOn"}
        graph[name] = (_references(body, names) | set(depends_on)) - {name}
    return graph


def depends_on(graph: dict[str, set[str]], resource: str, target: str) -> bool:
    """True if resource depends on target, directly or transitively."""
    seen, stack = set(), [resource]
    while stack:
        current = stack.pop()
        for dependency in graph.get(current, ()):
            if dependency == target:
                return True
            if dependency not in seen:
                seen.add(dependency)
                stack.append(dependency)
    return False
