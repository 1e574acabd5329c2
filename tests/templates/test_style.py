"""aws-ia style: parameters described, grouped, labelled and constrained; predicate condition names;
no hard-coded account, Region, partition, Availability Zone or AWS domain; unique names."""

import re

AWS_SPECIFIC = re.compile(r"^(List<)?AWS::")
PREDICATE = re.compile(r"^(Is|Has|Should|Uses|Can)[A-Z][A-Za-z]+$")
# Keys whose values are prose or input validation, not something CloudFormation deploys, and
# service principals (lambda.amazonaws.com ...), which are names, not endpoints.
EXEMPT_KEYS = {
    "Description", "ConstraintDescription", "AllowedPattern", "Metadata",
    "Service", "lambda:Principal",
}  # fmt: skip
# AWS::Lambda::Permission names its service principal as a plain string (an account ID there is
# still checked).
SERVICE_PRINCIPAL = re.compile(r"^[a-z0-9-]+\.amazonaws\.com$")


def _interface(template):
    return template.body.get("Metadata", {}).get("AWS::CloudFormation::Interface", {})


def test_every_parameter_is_described_grouped_and_labelled(templates):
    for template in templates.values():
        interface = _interface(template)
        grouped = [p for g in interface.get("ParameterGroups", []) for p in g["Parameters"]]
        labels = interface.get("ParameterLabels", {})
        for group in interface.get("ParameterGroups", []):
            assert group["Label"]["default"], f"{template.name}: unlabelled group"
        for name, spec in template.parameters.items():
            where = f"{template.name}:{name}"
            assert spec.get("Description", "").strip(), f"{where} has no Description"
            assert grouped.count(name) == 1, f"{where} is in {grouped.count(name)} groups"
            assert labels.get(name, {}).get("default"), f"{where} has no label"
        assert set(grouped) <= set(template.parameters), f"{template.name}: group names unknown"


def test_every_parameter_is_constrained(templates):
    for template in templates.values():
        for name, spec in template.parameters.items():
            where = f"{template.name}:{name}"
            kind = spec["Type"]
            if AWS_SPECIFIC.match(kind) or "AllowedValues" in spec:
                continue
            if kind == "Number":
                assert "MinValue" in spec and "MaxValue" in spec, f"{where}: unbounded number"
            else:
                assert "AllowedPattern" in spec, f"{where}: free text without AllowedPattern"
                assert spec.get("ConstraintDescription"), f"{where}: no ConstraintDescription"


def test_defaults_satisfy_their_own_constraints(templates):
    for template in templates.values():
        for name, spec in template.parameters.items():
            if "Default" not in spec:
                continue
            default = str(spec["Default"])
            if "AllowedValues" in spec:
                assert default in [str(v) for v in spec["AllowedValues"]], name
            if "AllowedPattern" in spec:
                assert re.fullmatch(spec["AllowedPattern"], default), f"{template.name}:{name}"


def test_resource_ids_and_subnets_use_aws_specific_types(nested):
    for template in nested.values():
        for name, spec in template.parameters.items():
            if name.endswith(("SubnetIds", "SecurityGroupId", "VpcId")):
                assert AWS_SPECIFIC.match(spec["Type"]), f"{template.name}:{name}"


def test_condition_names_are_predicates(templates):
    for template in templates.values():
        for name in template.body.get("Conditions", {}):
            assert PREDICATE.match(name), f"{template.name}: condition {name} is not a predicate"


def _deployed_strings(node, key=None):
    """Every string CloudFormation would act on (prose and validation excluded)."""
    if key in EXEMPT_KEYS or (key == "Principal" and SERVICE_PRINCIPAL.match(str(node))):
        return
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _deployed_strings(v, k)
    elif isinstance(node, list):
        for item in node:
            yield from _deployed_strings(item, key)
    elif isinstance(node, str):
        yield node


def _body_without_mappings(template):
    return {k: v for k, v in template.body.items() if k != "Mappings"}


def test_no_hard_coded_account_region_partition_or_zone(templates):
    banned = {
        "account ID": re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])"),
        "Region": re.compile(r"\b(us|eu|ap|sa|ca|me|af|il|mx|cn)-[a-z]+-[0-9]\b"),
        "Availability Zone": re.compile(r"\b[a-z]{2}-[a-z]+-[0-9][a-f]\b"),
        "partition": re.compile(r"arn:aws(-[a-z]+)?:"),
        "AWS domain": re.compile(r"amazonaws\.com|aws\.amazon\.com"),
    }
    for template in templates.values():
        for text in _deployed_strings(_body_without_mappings(template)):
            for what, pattern in banned.items():
                assert not pattern.search(text), f"{template.name}: hard-coded {what} in {text!r}"


def test_every_arn_and_url_is_built_from_pseudo_parameters(templates):
    for template in templates.values():
        for text in _deployed_strings(_body_without_mappings(template)):
            assert not re.search(r"arn:(?!\$\{AWS::Partition\}:)", text), (
                f"{template.name}: {text!r}"
            )
            for url in re.findall(r"https://[^\s\"']+", text):
                assert "${AWS::URLSuffix}" in url or "${ConsoleHost}" in url, (
                    f"{template.name}: {url}"
                )


def test_console_hosts_are_mapped_per_partition(templates):
    mapping = templates["nested/warehouse.yaml"].body["Mappings"]["Partition"]
    assert set(mapping) == {"aws", "aws-cn", "aws-us-gov"}


def test_physical_names_carry_the_stack_unique_suffix(nested):
    name_properties = {
        "ClusterName", "Name", "NamespaceName", "WorkgroupName", "ClusterIdentifier",
        "ConnectorName", "VPCConnectionId", "FunctionName",
    }  # fmt: skip
    for template in nested.values():
        for resource_name, resource in template.resources.items():
            for prop in name_properties & set(resource.get("Properties", {})):
                if resource["Type"].startswith("Custom::"):
                    continue
                value = resource["Properties"][prop]
                if isinstance(value, dict) and "Ref" in value:
                    continue  # names another resource of this stack
                value = str(value)
                assert "ResourceSuffix" in value, (
                    f"{template.name}:{resource_name}.{prop} = {value} would collide between stacks"
                )


def test_no_fixed_role_or_bucket_names(templates):
    for template in templates.values():
        for name, resource in template.resources.items():
            props = resource.get("Properties", {})
            assert "RoleName" not in props, f"{template.name}:{name}"
            assert "BucketName" not in props, f"{template.name}:{name}"


def test_security_groups_declare_egress_and_accept_nothing_from_anywhere(templates):
    for template in templates.values():
        for name, group in template.resources_of("AWS::EC2::SecurityGroup"):
            # Without declared egress EC2 adds allow-all; declaring it keeps egress to what is used.
            assert group["Properties"].get("SecurityGroupEgress"), f"{template.name}:{name}"
            for rule in group["Properties"].get("SecurityGroupIngress", []):
                assert "CidrIp" not in rule and "CidrIpv6" not in rule, f"{template.name}:{name}"
        for name, rule in template.resources_of("AWS::EC2::SecurityGroupIngress"):
            props = rule["Properties"]
            assert "SourceSecurityGroupId" in props, f"{template.name}:{name} accepts a CIDR"
