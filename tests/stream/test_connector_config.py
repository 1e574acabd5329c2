"""connector/: the MSK Connect datagen configuration, held to the plugin's grammar and the contract.

The key grammar follows amazon-msk-data-generator v0.4 (parsers/ParseKeyProcessor and
core/Context): the first dot-separated token picks the parser; unknown `global.*`, `topic.<t>.*`
and `attr*` settings make the connector fail at start. Keys with any other first token are
ignored by the plugin; here only the Kafka Connect keys we use are allowed, so a typo such as
`genvv.` fails this test instead of silently generating nothing.

What the real plugin draws from this configuration, record by record and field by field, is
tested by running it: tests/stream/test_datagen_plugin.py.
"""

import itertools
import json
import re
import uuid

import pytest

from flu_monitor import contract, refdata
from flu_monitor.paths import CONNECTOR_DIR

CONNECT_KEYS = {
    "connector.class",
    "tasks.max",
    "key.converter",
    "value.converter",
    "value.converter.schemas.enable",
}
GLOBAL_SETTINGS = {"throttle.ms", "history.records.max", "matching.rate"}
TOPIC_SETTINGS = {"throttle.ms", "history.records.max", "tombstone.rate", "records.exactly"}
ATTR_SETTINGS = {"null.rate", "matching.rate"}
GENERATORS = {"with", "matching"}
# Contract fields the datagen cannot produce faithfully; the warehouse derives them
# (docs/contract.md, tests/stream/test_datagen_plugin.py).
DERIVED = {"event_time", "state_code", "age_band"}
# Datagen fields that stand for a contract field, which the warehouse computes from them: the
# county (and its state) of a resident of the three states (sql/030_reference.sql, county_keys),
# and the value at a code's index in the contract's list (sql/040_cases.sql) - Faker 1.0.2 cannot
# draw uniformly from a list of strings, but random.nextInt draws uniformly.
STANDS_FOR = {
    "resident_number": "county_fips",
    "symptom_code": "symptoms",
    "severity_code": "symptom_severity",
    "vaccination_code": "vaccination_status",
}


def load_config() -> dict[str, str]:
    config = json.loads((CONNECTOR_DIR / "connector.json").read_text())
    assert all(isinstance(v, str) for v in config.values()), "MSK Connect takes string values"
    return config


def parse_key(key: str) -> dict:
    """One configuration key as the plugin reads it; ValueError where the plugin would fail."""
    tokens = key.split(".")
    head = tokens[0]
    if head in ("genkp", "genvp"):
        qualified = len(tokens) == 4 and tokens[2] == "sometimes"
        if len(tokens) != (4 if qualified else 3):
            raise ValueError(f"{key}: expected {head}.<topic>[.sometimes].<with|matching>")
        gen = tokens[-1]
        kind, topic, attr = "primitive", tokens[1], None
    elif head in ("genk", "genv"):
        qualified = len(tokens) == 5 and tokens[3] == "sometimes"
        if len(tokens) != (5 if qualified else 4):
            raise ValueError(f"{key}: expected {head}.<topic>.<attr>[.sometimes].<with|matching>")
        gen = tokens[-1]
        kind, topic, attr = "complex", tokens[1], tokens[2]
    elif head in ("attrk", "attrv"):
        if ".".join(tokens[3:]) not in ATTR_SETTINGS:
            raise ValueError(f"Unrecognized attribute configuration: {key}")
        return {"kind": "attr", "ns": head[-1], "topic": tokens[1], "attr": tokens[2]}
    elif head == "topic":
        if ".".join(tokens[2:]) not in TOPIC_SETTINGS:
            raise ValueError(f"Unrecognized topic configuration: {key}")
        return {"kind": "topic", "topic": tokens[1]}
    elif head == "global":
        if ".".join(tokens[1:]) not in GLOBAL_SETTINGS:
            raise ValueError(f"Unrecognized global configuration: {key}")
        return {"kind": "global"}
    elif key in CONNECT_KEYS:
        return {"kind": "connect"}
    else:
        raise ValueError(f"{key}: not a datagen key and not a Kafka Connect key we use")
    if gen not in GENERATORS:
        raise ValueError(f"{key}: generator must be with or matching, not {gen!r}")
    ns = "key" if head.startswith("genk") else "value"
    return {"kind": kind, "ns": ns, "topic": topic, "attr": attr, "generator": gen}


def check_config(config: dict[str, str]) -> dict[str, str]:
    """The plugin's start-up validation; returns {value attribute: expression}."""
    parsed = {key: parse_key(key) for key in config}
    generators = [p for p in parsed.values() if p["kind"] in ("primitive", "complex")]
    topics = {p["topic"] for p in generators}
    for key, p in parsed.items():
        if p["kind"] == "topic" and p["topic"] not in topics:
            raise ValueError(f"{key}: topic configuration for a topic without generators")
        if p["kind"] == "attr" and not any(
            g["topic"] == p["topic"] and g["attr"] == p["attr"] for g in generators
        ):
            raise ValueError(f"{key}: attribute configuration without a generator")
    for topic, ns in itertools.product(topics, ("key", "value")):
        kinds = {g["kind"] for g in generators if g["topic"] == topic and g["ns"] == ns}
        if len(kinds) > 1:
            raise ValueError(f"{topic} {ns}: both primitive and complex generators")
    return {
        p["attr"]: config[key]
        for key, p in parsed.items()
        if p["kind"] == "complex" and p["ns"] == "value"
    }


# -- Java Faker expressions used by the configuration, evaluated the way Java Faker 1.0.2 does --

EXPRESSION = re.compile(r"^#\{([A-Za-z_.]+)((?: ?,?'[^']*')*)\}$")


def expand_regex(pattern: str) -> set[str]:
    """Every string a finite regex of literals, (a|b) groups and [x-y] classes matches."""
    results = {""}
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "(":
            depth, j = 1, i + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(pattern[j], 0)
                j += 1
            options = set()
            for branch in _split_top(pattern[i + 1 : j - 1]):
                options |= expand_regex(branch)
            i = j
        elif c == "[":
            j = pattern.index("]", i)
            body, options = pattern[i + 1 : j], set()
            k = 0
            while k < len(body):
                if k + 2 < len(body) and body[k + 1] == "-":
                    options |= {chr(x) for x in range(ord(body[k]), ord(body[k + 2]) + 1)}
                    k += 3
                else:
                    options.add(body[k])
                    k += 1
            i = j + 1
        elif c.isalnum() or c in "_-":
            options, i = {c}, i + 1
        else:
            raise ValueError(f"regex feature {c!r} not supported by this checker: {pattern}")
        results = {r + o for r in results for o in options}
    return results


def _split_top(body: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for k, c in enumerate(body):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == "|" and depth == 0:
            parts.append(body[start:k])
            start = k + 1
    return parts + [body[start:]]


def domain(expression: str) -> tuple[str, object]:
    """('strings', set) for regexify, ('ints', range) for random.nextInt, ('uuid', None)."""
    match = EXPRESSION.match(expression)
    if not match:
        raise ValueError(f"not a single Faker expression: {expression!r}")
    method, args = match.group(1).lower(), re.findall(r"'([^']*)'", match.group(2))
    if method == "regexify" and len(args) == 1:
        return "strings", expand_regex(args[0])
    if method == "random.nextint" and len(args) == 2:
        low, high = map(int, args)
        return "ints", range(low, high + 1)  # RandomService.nextInt(min, max): both included
    if method == "internet.uuid" and not args:
        return "uuid", None
    raise ValueError(f"expression not covered by this checker: {expression!r}")


# -- tests ----------------------------------------------------------------------------------


def test_configuration_parses_with_the_plugin_grammar():
    generated = set(check_config(load_config()))
    assert generated - set(STANDS_FOR) <= set(contract.FIELDS)
    assert {STANDS_FOR.get(f, f) for f in generated} | DERIVED == set(contract.FIELDS)
    topics = {parse_key(k).get("topic") for k in load_config()} - {None}
    assert topics == {contract.TOPIC}


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("global.throttle", "Unrecognized global configuration"),
        ("topic.flu_cases.throttle", "Unrecognized topic configuration"),
        ("attrv.flu_cases.age.null_rate", "Unrecognized attribute configuration"),
        ("genv.flu_cases.age.witth", "generator must be with or matching"),
        ("genv.flu_cases.with", "expected genv.<topic>.<attr>"),
        ("genvv.flu_cases.age.with", "not a datagen key"),
        ("genkp.flu_cases.age.x.with", "expected genkp.<topic>"),
    ],
)
def test_unknown_keys_are_rejected(key, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_config({**load_config(), key: "1"})


def test_plugin_cross_checks_are_enforced():
    config = load_config()
    with pytest.raises(ValueError, match="topic configuration for a topic without generators"):
        check_config({**config, "topic.other.throttle.ms": "10"})
    with pytest.raises(ValueError, match="attribute configuration without a generator"):
        check_config({**config, "attrv.flu_cases.nothing.null.rate": "0.5"})
    with pytest.raises(ValueError, match="both primitive and complex"):
        check_config({**config, "genvp.flu_cases.with": "#{internet.uuid}"})


def test_every_domain_lies_inside_the_contract():
    schema = contract.schema()["properties"]
    counties, facilities = refdata.counties(), refdata.facilities()
    for attr, expression in check_config(load_config()).items():
        kind, values = domain(expression)
        prop = schema.get(attr, {})
        if kind == "uuid":
            assert re.fullmatch(prop["pattern"], str(uuid.uuid4()))
        elif attr == "resident_number":  # every resident of the three states, nothing else
            assert values == range(sum(c.population for c in counties.values()))
            assert values == range(refdata.residents())
        elif attr in STANDS_FOR:  # every index of the contract's list, nothing else
            field = schema[STANDS_FOR[attr]]
            assert values == range(len(field.get("items", field)["enum"])), attr
        elif attr == "facility_id":
            assert set(values) == set(facilities)
        elif attr == "symptoms":
            assert values <= set(contract.SYMPTOMS)
        elif attr == "admitted":
            assert values == {"true", "false"}
        elif attr == "zipcode":
            assert all(re.fullmatch(prop["pattern"], z) for z in values)
            # NJ 07-08, NY 10-14, PA 15-19: ZIP prefixes of the three states only.
            assert {z[:2] for z in values} == {"07", "08", *map(str, range(10, 20))}
        elif kind == "ints":  # the contract's whole range (an admitted stay is at least 1 day)
            low = 1 if attr == "days_admitted" else prop["minimum"]
            assert (min(values), max(values)) == (low, prop["maximum"]), attr
        elif "enum" in prop:
            assert values == set(prop["enum"]), attr
        elif "const" in prop:
            assert values == {prop["const"]}, attr
        else:
            pytest.fail(f"{attr}: no rule to check {expression}")


def test_worker_and_plugin_pin():
    worker = dict(
        line.split("=", 1)
        for line in (CONNECTOR_DIR / "worker.properties").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert worker["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
    assert worker["value.converter.schemas.enable"] == "false"  # plain JSON for JSON_PARSE
    assert worker["producer.acks"] == "all"
    pin = json.loads((CONNECTOR_DIR / "plugin.json").read_text())
    assert pin["version"] == "v0.4.0"
    assert pin["url"].endswith("/releases/download/v0.4.0/" + pin["artifact"])
    assert pin["artifact"] == "msk-data-generator-0.4-jar-with-dependencies.jar"
    assert re.fullmatch(r"[0-9a-f]{64}", pin["sha256"]) and pin["size_bytes"] == 2_367_699
    assert pin["sha256_status"].startswith("provisional")
    assert load_config()["connector.class"] == pin["connector_class"]
