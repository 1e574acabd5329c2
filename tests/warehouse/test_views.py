"""Every analytics and dashboard view on a hand-built data set, against figures computed here in
plain Python; incremental refresh equal to a full recompute; duplicates; re-apply; the CLI."""

import datetime as dt
import json
from collections import Counter, defaultdict

import psycopg
import pytest
from click.testing import CliRunner

from flu_monitor import refdata
from flu_monitor.cli import main
from flu_monitor.dashboard_spec import load as load_spec
from flu_monitor.warehouse import postgres, sqlscript

from . import conftest
from .conftest import (
    ON_APPLIED,
    event,
    ingest,
    local_objects,
    query,
    read_only_warehouse,
    round2,
)

COUNTIES = ["36047", "36001", "34003", "42101", "42003"]
DAYS = [dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 4)]  # 11-03: no case
AGES = [2, 9, 30, 55, 80, 17, 64, 65]
SEVERITIES = ["mild", "moderate", "severe"]
VACCINATION = ["vaccinated", "unvaccinated", "unknown"]


def dataset() -> list[dict]:
    """45 events spread over counties, days, ages, severities, vaccination and admission."""
    events = []
    for i in range(45):
        day = DAYS[i % 3]
        events.append(
            event(
                county_fips=COUNTIES[i % 5],
                event_time=f"{day.isoformat()}T{i % 24:02d}:15:00Z",
                age=AGES[i % 8],
                symptom_severity=SEVERITIES[(i // 2) % 3],
                vaccination_status=VACCINATION[(i // 3) % 3],
                admitted=i % 4 == 0,
                case=i,  # makes each case_id distinct (dropped below)
            )
        )
    for e in events:
        e.pop("case")
    return events


def _day(e):
    return dt.date.fromisoformat(e["event_time"][:10])


def _facility(e):
    return refdata.facilities()[e["facility_id"]]


def _load(url: str) -> list[dict]:
    """The data set ingested in three batches with a refresh after each (incremental path)."""
    events = dataset()
    ingest(url, events[:10], first_offset=0)
    ingest(url, events[10:30], first_offset=10)
    ingest(url, events[30:], first_offset=30)
    return events


# The tests that take `loaded`, on one worker under xdist: no second worker waits while the first
# fills its database (once for all workers, postgres_copy)
LOADED = pytest.mark.xdist_group("views_loaded")


@pytest.fixture
def loaded(postgres_copy):
    """The loaded data set, for a test that adds to it (marked LOADED): a copy of the database
    _load filled once (a copy costs a sixth of its three refreshes)."""
    return postgres_copy("views_loaded", _load, base=ON_APPLIED), dataset()


@pytest.fixture(scope="module")
def loaded_read_only(postgres_copies):
    """The loaded data set once, for the tests that only read it."""
    yield from read_only_warehouse(postgres_copies, "views_read_only", _load)


def test_daily_state_cases(loaded_read_only):
    url, events = loaded_read_only
    expected = defaultdict(lambda: [0, 0, 0, None])
    for e in events:
        row = expected[(_day(e), e["state_code"])]
        row[0] += 1
        row[1] += e["admitted"]
        row[2] += e["symptom_severity"] == "severe"
        at = dt.datetime.fromisoformat(e["event_time"].replace("Z", ""))
        row[3] = max(row[3] or at, at)  # the data's clock: the latest event of the day
    got = query(
        url,
        "SELECT day, state_code, cases, admissions, severe_cases, latest_event_time "
        "FROM mv_daily_state_cases",
    )
    assert sorted(got) == sorted((*k, *v) for k, v in expected.items())


def test_hospitalization_by_age_band(loaded_read_only):
    url, events = loaded_read_only
    totals, hospitalized = Counter(), Counter()
    for e in events:
        key = (_day(e), e["state_code"], e["age_band"])
        totals[key] += 1
        hospitalized[key] += e["admitted"]
    got = query(
        url,
        "SELECT day, state_code, age_band, total_cases, hospitalized_cases, "
        "hospitalization_rate FROM mv_hospitalization_by_age_band",
    )
    assert sorted(got) == sorted(
        (*k, totals[k], hospitalized[k], round2(100 * hospitalized[k], totals[k])) for k in totals
    )


def test_severity_by_age_band(loaded_read_only):
    url, events = loaded_read_only
    expected = Counter(
        (_day(e), e["state_code"], e["age_band"], e["symptom_severity"]) for e in events
    )
    got = query(
        url,
        "SELECT day, state_code, age_band, symptom_severity, cases FROM mv_severity_by_age_band",
    )
    assert sorted(got) == sorted((*k, n) for k, n in expected.items())


def test_vaccination_outcomes(loaded_read_only):
    url, events = loaded_read_only
    cases, severe, admitted = Counter(), Counter(), Counter()
    for e in events:
        key = (_day(e), e["state_code"], e["vaccination_status"], e["age_band"])
        cases[key] += 1
        severe[key] += e["symptom_severity"] == "severe"
        admitted[key] += e["admitted"]
    got = query(
        url,
        "SELECT day, state_code, vaccination_status, age_band, cases, severe_cases, "
        "admissions, severe_rate, admission_rate FROM mv_vaccination_outcomes",
    )
    assert sorted(got) == sorted(
        (
            *k,
            cases[k],
            severe[k],
            admitted[k],
            round2(100 * severe[k], cases[k]),
            round2(100 * admitted[k], cases[k]),
        )
        for k in cases
    )


def test_top_facilities(loaded_read_only):
    url, events = loaded_read_only
    admissions = Counter((_day(e), e["facility_id"]) for e in events if e["admitted"])
    got = query(
        url,
        "SELECT day, facility_id, facility_name, state_code, county_fips, latitude, "
        "longitude, admissions FROM mv_top_facilities",
    )
    expected = []
    for (day, fid), n in admissions.items():
        f = refdata.facilities()[fid]
        expected.append((day, fid, f.name, f.state_code, f.county_fips, f.latitude, f.longitude, n))
    assert sorted(got) == sorted(expected)
    assert sum(admissions.values()) == 12


def test_daily_county_cases_is_zero_filled_with_rates_and_7_day_average(loaded_read_only):
    url, events = loaded_read_only
    cases = Counter((_day(e), e["county_fips"]) for e in events)
    admitted = Counter((_day(e), e["county_fips"]) for e in events if e["admitted"])
    days = [DAYS[0] + dt.timedelta(d) for d in range((DAYS[-1] - DAYS[0]).days + 1)]
    expected = []
    for fips, county in refdata.counties().items():
        for i, day in enumerate(days):
            window = sum(cases[(d, fips)] for d in days[max(0, i - 6) : i + 1])
            expected.append(
                (
                    day,
                    fips,
                    county.state_code,
                    cases[(day, fips)],
                    admitted[(day, fips)],
                    round2(cases[(day, fips)] * 100000, county.population),
                    round2(window, 7),
                )
            )
    got = query(
        url,
        "SELECT day, county_fips, state_code, cases, admissions, rate_per_100k, "
        "cases_7day_avg FROM mv_daily_county_cases",
    )
    assert len(got) == 150 * 4  # 150 counties x 4 days, 2026-11-03 (no case at all) included
    assert sorted(got) == sorted(expected)


def test_dashboard_kpis_are_the_latest_day_per_state(loaded_read_only):
    url, events = loaded_read_only
    latest = max(_day(e) for e in events)
    cases, admitted = Counter(), Counter()
    for e in events:
        if _day(e) == latest:
            cases[e["state_code"]] += 1
            admitted[e["state_code"]] += e["admitted"]
    got = query(url, "SELECT day, state_code, cases_today, admissions_today FROM v_dashboard_kpis")
    assert sorted(got) == sorted((latest, s, cases[s], admitted[s]) for s in ("NJ", "NY", "PA"))


def test_county_latest_covers_every_county_over_the_last_7_days(loaded_read_only):
    url, events = loaded_read_only
    latest = max(_day(e) for e in events)
    cases = Counter(e["county_fips"] for e in events if (latest - _day(e)).days < 7)
    got = query(
        url,
        "SELECT day, county_fips, county_name, state_code, cases_7day, "
        "rate_7day_per_100k FROM v_county_latest",
    )
    assert sorted(got) == sorted(
        (
            latest,
            c.fips,
            c.name,
            c.state_code,
            cases[c.fips],
            round2(cases[c.fips] * 100000, c.population),
        )
        for c in refdata.counties().values()
    )
    assert sum(row[4] for row in got) == 45


def test_views_have_the_columns_the_dashboard_spec_reads(loaded_read_only):
    url, _ = loaded_read_only
    for name, dataset_spec in load_spec().datasets.items():
        view = dataset_spec.view
        with psycopg.connect(url) as conn:
            cur = conn.execute(f"SELECT * FROM {view} LIMIT 0")
            columns = {c.name for c in cur.description}
        missing = set(dataset_spec.columns) - columns
        assert not missing, f"{name}: {view} lacks {missing}"


def assert_incremental_equals_full(url: str) -> None:
    """Each view's table, maintained batch by batch, equals its SELECT run from scratch."""
    objects = local_objects()
    with psycopg.connect(url) as conn:
        for o in objects.values():
            if o.kind in ("append", "aggregate", "full"):
                diff = conftest.differences(conn, o.name, o.columns, o.query)
                assert diff == [], (o.name, diff[:3])
                if o.name != "mv_outbreak_statistics":  # needs weeks of data: test_detector.py
                    assert conn.execute(f"SELECT count(*) FROM {o.name}").fetchone()[0] > 0, o.name


def test_incremental_refresh_equals_a_full_recompute(loaded_read_only):
    assert_incremental_equals_full(loaded_read_only[0])


@LOADED
def test_duplicate_deliveries_count_once(loaded):
    url, events = loaded
    ingest(url, events[:20], first_offset=0)  # redelivered: same partition and offsets
    ingest(url, [{"case_id": "bad"}] * 2, first_offset=45)
    ingest(url, [{"case_id": "bad"}], first_offset=45)  # the rejected one, again
    assert query(url, "SELECT count(*) FROM flu_cases") == [(45,)]
    assert query(url, "SELECT sum(cases) FROM mv_daily_state_cases") == [(45,)]
    assert query(url, "SELECT reason, records FROM flu_rejected_records") == [
        ("invalid_value:case_id", 2)
    ]


def cases_and_duplicates(url: str) -> tuple[list, list]:
    cases = query(url, "SELECT kafka_partition, kafka_offset, age FROM flu_cases ORDER BY 1, 2")
    duplicates = query(
        url,
        "SELECT kafka_partition, kafka_offset FROM flu_rejected_record_detail "
        "WHERE reason = 'duplicate_case_id' ORDER BY 1, 2",
    )
    return cases, duplicates


@LOADED
def test_a_case_id_counts_once_whatever_its_kafka_position(loaded):
    """A second copy of a case (same case_id at another position: a replayed event) is a
    duplicate, rejected with its own reason; the copy read first is the case, whatever the
    copies hold."""
    url, events = loaded
    first = events[0]  # stored at partition 0, offset 0 by the first batch
    # A later refresh: the same case again, in partition 0 and (lower position) in partition 1.
    ingest(url, [{**first, "age": 99, "age_band": "65+"}], partition=1, first_offset=0)
    ingest(url, [first], partition=0, first_offset=200)
    # One refresh holding two copies of a new case, in two partitions: the lower position wins.
    new = event(case_id="3c9e1f0a-2b4d-4e6f-8a1c-5d7e9f0b2c4e", age=41)
    with psycopg.connect(url) as conn:
        rows = [(2, 7, dt.datetime(2026, 11, 20), None, json.dumps(new).encode())]
        rows += [(1, 9, dt.datetime(2026, 11, 20), None, json.dumps({**new, "age": 42}).encode())]
        postgres.insert_raw(conn, rows)
    postgres.refresh(url)
    # And one refresh holding two copies in ONE partition.
    twice = event(case_id="8d2f4a6c-1e3b-4c5d-9f7a-0b2c4e6f8a1d", age=43)
    ingest(url, [twice, twice], partition=3, first_offset=0)

    cases, duplicates = cases_and_duplicates(url)
    assert len(cases) == 45 + 2
    assert (0, 0, first["age"]) in cases and (1, 9, 42) in cases and (3, 0, 43) in cases
    assert duplicates == [(0, 200), (1, 0), (2, 7), (3, 1)]
    assert query(url, "SELECT sum(cases) FROM mv_daily_state_cases") == [(47,)]
    rejected = query(url, "SELECT reason, records FROM flu_rejected_records")
    assert ("duplicate_case_id", 4) in rejected
    assert_incremental_equals_full(url)


@LOADED
def test_a_rebuilt_flu_cases_joins_the_history_and_finds_the_same_cases(loaded):
    """A refresh joins flu_cases' new records to the two dedup aggregates over only the rows it
    made in them; flu_cases rebuilt from every record (its SQL changed) cannot, and joins the
    aggregates whole instead: the same cases and duplicates either way."""
    url, events = loaded
    first = events[0]  # partition 0, offset 0
    result = ingest(url, [first, event(age=41)], partition=1)  # a duplicate and a new case
    assert result.whole_joins == []
    cases, duplicates = cases_and_duplicates(url)
    assert (1, 1, 41) in cases and duplicates == [(1, 0)]
    with psycopg.connect(url) as conn:  # as if sql/ changed flu_cases: apply re-creates it
        conn.execute(
            f"UPDATE {sqlscript.LEDGER_TABLE} SET statement_hash = 'changed' "
            "WHERE object_name = 'flu_cases'"
        )
    postgres.apply(url, refresh_after=False)
    assert query(url, "SELECT count(*) FROM flu_cases") == [(0,)]
    result = ingest(url, [event(age=42), first], partition=2)  # rebuilt with new records
    assert result.whole_joins == ["flu_cases"]
    assert cases_and_duplicates(url) == (cases + [(2, 0, 42)], duplicates + [(2, 1)])
    assert ingest(url, [event(age=43)], partition=3).whole_joins == []
    assert query(url, "SELECT count(*) FROM flu_cases") == [(48,)]
    assert_incremental_equals_full(url)


@LOADED
def test_reapplying_sql_is_harmless(loaded):
    url, _ = loaded
    before = query(url, "SELECT * FROM mv_daily_county_cases ORDER BY day, county_fips")
    steps = postgres.apply(url)
    assert steps == []
    assert query(url, "SELECT * FROM mv_daily_county_cases ORDER BY day, county_fips") == before
    assert query(url, "SELECT count(*) FROM flu_cases_stream") == [(45,)]


def test_insert_raw_is_part_of_the_callers_transaction(warehouse):
    with psycopg.connect(warehouse) as conn:
        postgres.insert_raw(conn, [(0, 0, 1_762_000_000_000, b"k", b"\xff not utf-8")])
        conn.rollback()  # e.g. storing the consumer offsets failed
    postgres.refresh(warehouse)
    assert query(warehouse, "SELECT count(*) FROM flu_cases_stream") == [(0,)]


@LOADED
def test_refresh_is_incremental_and_idle_when_nothing_arrived(loaded):
    url, events = loaded
    idle = postgres.refresh(url)
    assert set(idle.rows.values()) == {0}
    result = ingest(url, [event(event_time="2026-11-04T10:00:00Z")], first_offset=100)
    assert result.rows["flu_cases_stream"] == 1
    assert result.rows["flu_cases"] == 1
    assert result.rows["mv_daily_state_cases"] == 1  # one group updated, not recomputed


def test_cli_load_jsonl_apply_refresh_rejected(warehouse, tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [event(county_fips="42101"), event(county_fips="42101", admitted=True)]
    path.write_bytes(
        b"\n".join(__import__("json").dumps(e).encode() for e in lines) + b"\nnot json\n"
    )
    runner = CliRunner()
    result = runner.invoke(main, ["db", "apply", "--database-url", warehouse])
    assert result.exit_code == 0, result.output
    assert "already up to date" in result.output
    for _ in range(2):  # offsets continue: the second load adds three more records
        result = runner.invoke(main, ["db", "load-jsonl", str(path), "--database-url", warehouse])
        assert result.exit_code == 0, result.output
        assert 'inserted 3 raw records into msk."flu_cases"' in result.output
    assert query(
        warehouse,
        "SELECT kafka_partition, min(kafka_offset), max(kafka_offset) FROM "
        "flu_cases_stream GROUP BY 1",
    ) == [(0, 0, 5)]
    # the second load repeats the two cases: duplicates, counted once
    assert query(warehouse, "SELECT state_code, cases, admissions FROM mv_daily_state_cases") == [
        ("PA", 2, 1)
    ]
    result = runner.invoke(main, ["db", "rejected", "--database-url", warehouse])
    assert result.output.split() == ["2", "duplicate_case_id", "2", "invalid_json"]
    result = runner.invoke(main, ["db", "refresh", "--database-url", warehouse])
    assert "(0 new records)" in result.output
