"""The REAL datagen plugin (amazon-msk-data-generator 0.4, ../shared/vendor/) in a real Kafka
Connect standalone worker (Maven Central jars) against a real broker, with the project's
connector and worker configuration (connector/): every record it writes passes the contract's
datagen rules, and every field follows the distribution docs/contract.md states.

The expected distributions are not assumed uniform. They come from how the plugin draws:
`#{random.nextInt 'a','b'}` is uniform over a..b (both included); `#{regexify '...'}` (Generex)
walks the regex's minimal automaton choosing uniformly among a state's transitions and then a
character within the transition's range, so alternatives that share a prefix share its
probability (generex_distribution). A chi-square test per field compares the counts with that.
The county is a uniform resident number of the three states, which the warehouse maps to the
county that resident lives in (sql/030_reference.sql): its county and state shares are checked
against the 2020 populations. Symptom, severity and vaccination are uniform codes, the index of
the value in the contract's list (sql/040_cases.sql).

The worker runs in the version MSK Connect runs (kafka/connect/pom.xml) for the distributions,
and in the local broker's version for loading and record shape.
"""

from __future__ import annotations

import collections
import math
import re
import time

import orjson
import pytest

from flu_monitor import contract, kafka_client, refdata
from tests.fixtures.connect import DATAGEN_JAR, ConnectWorker, msk_connect_version, worker_versions
from tests.stream.test_connector_config import check_config, domain, expand_regex, load_config

pytestmark = [
    pytest.mark.kafka,
    # The first test runs the worker for the whole module (a few minutes on a loaded machine).
    pytest.mark.timeout(1500),
    pytest.mark.skipif(
        not DATAGEN_JAR.exists(), reason=f"the real datagen plugin is missing: {DATAGEN_JAR}"
    ),
]

# Enough records for every county and facility to expect >= 5 (chi-square's rule of thumb);
# the plugin makes about 20 records/s on one core, so this takes under two minutes.
RECORDS_FOR_DISTRIBUTIONS = 2000
RECORDS_FOR_SHAPE = 200
P_VALUE_FLOOR = 1e-4  # a correct distribution fails one field in 10,000 runs
RESIDENT_RANGES = 40  # resident numbers checked for uniformity in this many equal ranges
# Counties pooled (consecutive in FIPS order) to this share of the residents at least, so every
# pool expects >= 10 of 2,000 records (chi-square's rule of thumb is 5).
COUNTY_POOL_SHARE = 1 / 200


def generex_distribution(pattern: str) -> dict[str, float]:
    """Probability of each string a finite regex matches, drawn as Generex draws: at each state
    of the minimal automaton one outgoing transition uniformly (transitions to the same state
    over adjacent characters are one range), then one character of its range uniformly."""

    def walk(suffixes: frozenset, prefix: str, p: float, out: dict) -> None:
        if suffixes == {""}:
            out[prefix] = out.get(prefix, 0.0) + p
            return
        if "" in suffixes:
            raise ValueError(f"{pattern}: a string that is a prefix of another is not modelled")
        residual = {
            c: frozenset(s[1:] for s in suffixes if s[0] == c) for c in {s[0] for s in suffixes}
        }
        ranges: list[list[str]] = []
        for c in sorted(residual):
            last = ranges[-1][-1] if ranges else None
            if last and ord(c) == ord(last) + 1 and residual[c] == residual[last]:
                ranges[-1].append(c)
            else:
                ranges.append([c])
        for chars in ranges:
            for c in chars:
                walk(residual[c], prefix + c, p / len(ranges) / len(chars), out)

    result: dict[str, float] = {}
    walk(frozenset(expand_regex(pattern)), "", 1.0, result)
    return result


def expected_distribution(expression: str) -> dict[str, float] | None:
    """What docs/contract.md states for a field's expression (None for UUIDs)."""
    kind, values = domain(expression)
    if kind == "ints":
        return {str(v): 1 / len(values) for v in values}
    if kind == "strings":
        return generex_distribution(re.search(r"'([^']*)'", expression).group(1))
    return None


def chi_square_p_value(counts: collections.Counter, expected: dict[str, float]) -> float:
    """P(chi-square >= observed) with len(expected) - 1 degrees of freedom; a value outside
    the expected domain gives 0."""
    if set(counts) - set(expected):
        return 0.0
    n = sum(counts.values())
    statistic = sum((counts[v] - n * p) ** 2 / (n * p) for v, p in expected.items())
    return _upper_regularized_gamma((len(expected) - 1) / 2, statistic / 2)


def _upper_regularized_gamma(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a): 1 - P(a, x) by P's power series below x = a + 1, by the
    continued fraction for Q (modified Lentz) above, both scaled by x^a e^-x / Gamma(a) in log
    space, so a very skewed sample gives a p-value near 0, never an underflow (Numerical Recipes,
    6.2)."""
    if x <= 0:
        return 1.0
    scale = math.exp(a * math.log(x) - x - math.lgamma(a))
    if x < a + 1:
        term = total = 1 / a
        n = 0
        while term > total * 1e-15:
            n += 1
            term *= x / (a + n)
            total += term
        return max(0.0, 1.0 - scale * total)
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    fraction = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1 / (d if abs(d) > tiny else tiny)
        c = b + an / c
        c = c if abs(c) > tiny else tiny
        fraction *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return scale * fraction


def normalize(record: dict, kafka_timestamp_ms: int) -> dict:
    """docs/contract.md, "Records from the datagen connector": what the warehouse SQL does."""
    event = dict(record)
    event["age"] = int(event["age"])
    event["admitted"] = event["admitted"] == "true"
    event["facility_id"] = int(event["facility_id"]) if event["admitted"] else None
    event["days_admitted"] = int(event["days_admitted"]) if event["admitted"] else 0
    event["symptoms"] = [contract.SYMPTOMS[int(event.pop("symptom_code"))]]
    event["symptom_severity"] = contract.SEVERITIES[int(event.pop("severity_code"))]
    event["vaccination_status"] = contract.VACCINATION_STATUSES[int(event.pop("vaccination_code"))]
    county = refdata.resident_county(int(event.pop("resident_number")))
    event["county_fips"], event["state_code"] = county.fips, county.state_code
    event["age_band"] = contract.age_band(event["age"])
    seconds = kafka_timestamp_ms // 1000
    event["event_time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    return event


def run_plugin(tmp_path, broker, version: str, count: int) -> list:
    """Start the worker with connector/ (throttle lifted, two tasks, so the test is quick), consume
    `count` records from flu_cases, stop the worker."""
    broker.create_topic(contract.TOPIC, partitions=3)
    consumer = kafka_client.make_consumer(broker.bootstrap_servers, None, [contract.TOPIC])
    records: list = []
    worker = ConnectWorker(
        tmp_path / f"connect-{version}", broker.bootstrap_servers, version,
        # Throttle lifted and a task per core: the same draws, sooner (each task draws alone).
        overrides={"global.throttle.ms": "0", "tasks.max": "2"},
    )  # fmt: skip
    (tmp_path / f"connect-{version}").mkdir()
    try:
        worker.start()
        worker.wait_running()
        deadline = time.monotonic() + 60 + count * 0.5  # >= 2 records/s even on a busy machine
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        assert len(records) >= count, (
            f"the plugin wrote {len(records)} of {count} records:\n{worker.log_tail()}"
        )
    finally:
        worker.stop()
        consumer.close()
    return records[:count]


@pytest.fixture(scope="module", params=worker_versions())
def plugin_records(request, tmp_path_factory):
    """(version, records) from one run of the real plugin per worker version."""
    from flu_monitor.local.kafka_server import KafkaServer

    version = request.param
    count = RECORDS_FOR_DISTRIBUTIONS if version == msk_connect_version() else RECORDS_FOR_SHAPE
    tmp_path = tmp_path_factory.mktemp("datagen")
    with KafkaServer(tmp_path / "kafka") as broker:
        return version, run_plugin(tmp_path, broker, version, count)


def test_every_record_passes_the_contract_after_the_documented_normalization(plugin_records):
    _, records = plugin_records
    fields = set(check_config(load_config()))
    for record in records:
        assert record.key is None  # no key generator: docs/contract.md
        value = orjson.loads(record.value)
        assert set(value) == fields, value
        assert all(isinstance(v, str) for v in value.values()), value  # strings, as documented
        event = normalize(value, record.timestamp)
        assert contract.violations(event) == [], (value, contract.violations(event))
    ids = [orjson.loads(r.value)["case_id"] for r in records]
    assert len(set(ids)) == len(ids)


def county_pools() -> dict[str, str]:
    """FIPS -> the name of its pool: consecutive counties in FIPS order, each pool holding at
    least COUNTY_POOL_SHARE of the residents (the last pool may hold less; it joins the one
    before)."""
    pools: list[list[str]] = [[]]
    residents = 0
    for county in sorted(refdata.counties().values(), key=lambda c: c.fips):
        if residents >= COUNTY_POOL_SHARE * refdata.residents():
            pools.append([])
            residents = 0
        pools[-1].append(county.fips)
        residents += county.population
    if residents < COUNTY_POOL_SHARE * refdata.residents():
        pools[-2] += pools.pop()
    return {fips: f"{pool[0]}..{pool[-1]}" for pool in pools for fips in pool}


def resident_parts() -> list[tuple]:
    """resident_number: uniform over 0..P-1 in RESIDENT_RANGES equal ranges, and the county and
    state the warehouse gives it, by population (counties pooled: county_pools)."""
    total, counties, pools = refdata.residents(), refdata.counties(), county_pools()
    by_state: dict[str, float] = collections.defaultdict(float)
    by_pool: dict[str, float] = collections.defaultdict(float)
    for county in counties.values():
        by_state[county.state_code] += county.population / total
        by_pool[pools[county.fips]] += county.population / total
    return [
        ("resident_number", lambda n: str(int(n) * RESIDENT_RANGES // total),
         {str(r): 1 / RESIDENT_RANGES for r in range(RESIDENT_RANGES)}),
        ("state_code (by resident)", lambda n: refdata.resident_county(int(n)).state_code,
         dict(by_state)),
        ("county_fips (by resident, pooled)", lambda n: pools[refdata.resident_county(int(n)).fips],
         dict(by_pool)),
    ]  # fmt: skip


def checked_parts(field: str, expression: str) -> list[tuple]:
    """(name, value -> category, expected distribution) that the chi-square test checks for a
    field: the field itself; for zipcode (12,000 values, too many for a few thousand records)
    its 2-digit prefix and each of its last three digits; for resident_number, resident_parts.
    None for a UUID (checked for uniqueness instead)."""
    if field == "resident_number":
        return resident_parts()
    expected = expected_distribution(expression)
    if expected is None:
        return []
    if field != "zipcode":
        return [(field, lambda value: value, expected)]
    parts = [(f"{field}[:2]", lambda z: z[:2])]
    parts += [(f"{field}[{i}]", lambda z, i=i: z[i]) for i in (2, 3, 4)]
    checked = []
    for name, part in parts:
        sub: dict[str, float] = collections.defaultdict(float)
        for value, p in expected.items():
            sub[part(value)] += p
        checked.append((name, part, dict(sub)))
    return checked


def test_every_field_has_the_documented_distribution(plugin_records):
    version, records = plugin_records
    if version != msk_connect_version():
        pytest.skip(
            f"distributions are measured on the MSK Connect version {msk_connect_version()}"
        )
    values = [orjson.loads(r.value) for r in records]
    failures = []
    for field, expression in check_config(load_config()).items():
        for name, part, part_expected in checked_parts(field, expression):
            counts = collections.Counter(part(v[field]) for v in values)
            p_value = chi_square_p_value(counts, part_expected)
            if p_value < P_VALUE_FLOOR:
                n = len(values)
                worst = sorted(part_expected, key=lambda v: -abs(counts[v] - n * part_expected[v]))
                detail = {v: (counts[v], round(n * part_expected[v], 1)) for v in worst[:5]}
                failures.append(f"{name}: p={p_value:.2g} (observed, expected) {detail}")
    assert not failures, "\n".join(failures)


def test_every_record_is_a_case_in_the_warehouse_as_normalized(plugin_records, postgres_db):
    """The plugin's records, as they are, through the warehouse SQL (translated, on PostgreSQL):
    none rejected, and each case has the county, state and values normalize() gives."""
    import psycopg

    from flu_monitor.warehouse import postgres

    _, records = plugin_records
    postgres.apply(postgres_db, refresh_after=False)
    with psycopg.connect(postgres_db) as conn:
        postgres.insert_raw(
            conn, [(r.partition, r.offset, r.timestamp, r.key, r.value) for r in records]
        )
    postgres.refresh(postgres_db)
    with psycopg.connect(postgres_db) as conn:
        rejected = conn.execute("SELECT reason, records FROM flu_rejected_records").fetchall()
        cases = conn.execute(
            "SELECT kafka_partition, kafka_offset, county_fips, state_code, symptoms, "
            "symptom_severity, vaccination_status, age_band FROM flu_cases"
        ).fetchall()
    assert rejected == []
    expected = []
    for r in records:
        e = normalize(orjson.loads(r.value), r.timestamp)
        expected.append((r.partition, r.offset, e["county_fips"], e["state_code"],
                         e["symptoms"][0], e["symptom_severity"], e["vaccination_status"],
                         e["age_band"]))  # fmt: skip
    assert sorted(cases) == sorted(expected)


def test_the_distribution_model_matches_what_the_plugin_is_known_to_do():
    # Measured with the plugin's own Java Faker 1.0.2 (docs/contract.md): prefixes share.
    assert generex_distribution("(ab|ac|d)") == {"ab": 0.25, "ac": 0.25, "d": 0.5}
    assert generex_distribution("(mild|moderate|severe)") == {
        "mild": 0.25, "moderate": 0.25, "severe": 0.5,
    }  # fmt: skip
    assert generex_distribution("1[0-4]") == {f"1{d}": 0.2 for d in range(5)}


def test_the_chi_square_test_rejects_a_skewed_sample():
    expected = {str(v): 1 / 10 for v in range(10)}
    fair = collections.Counter({str(v): 100 for v in range(10)})
    skewed = collections.Counter({**fair, "0": 160, "9": 40})
    assert chi_square_p_value(fair, expected) == pytest.approx(1.0)
    assert chi_square_p_value(skewed, expected) < 1e-6  # chi2 = 72 with 9 degrees of freedom
    assert chi_square_p_value(collections.Counter({"x": 1}), expected) == 0.0
    # Far in the tail (chi2 = 9,000): near 0, not an underflow read as 1.
    assert chi_square_p_value(collections.Counter({"0": 1000}), expected) < 1e-300


@pytest.mark.parametrize("x", [0.01, 0.5, 1.0, 3.0, 10.0, 40.0, 300.0])
def test_the_p_value_matches_closed_forms(x):
    # Q(1, x) = e^-x (2 degrees of freedom); Q(1/2, x) = erfc(sqrt(x)) (1 degree of freedom).
    assert _upper_regularized_gamma(1, x) == pytest.approx(math.exp(-x), rel=1e-9, abs=1e-300)
    assert _upper_regularized_gamma(0.5, x) == pytest.approx(
        math.erfc(math.sqrt(x)), rel=1e-9, abs=1e-300
    )
