"""The dashboard spec (quicksight/dashboard.yaml): loaded and checked once, for both renderers.

The local dashboard draws it; the QuickSight publisher compiles it into a Definition. Checks here
catch a broken reference (unknown dataset, column, visual or filter) before either renderer runs.
"""

from functools import cache
from pathlib import Path

import yaml

from flu_monitor.paths import QUICKSIGHT_DIR

SPEC_FILE = QUICKSIGHT_DIR / "dashboard.yaml"

VISUAL_TYPES = {
    "kpi",
    "line",
    "bar",
    "stacked_bar",
    "grouped_bar",
    "county_map",
    "point_map",
    "table",
}
COLUMN_TYPES = {"date", "string", "integer", "decimal"}
FILTER_TYPES = {"multi_select", "date_range"}
# Geographic roles a dataset may give its columns (`geo:`). QuickSight maps need them: it geocodes
# a county by name within its state, and plots points from columns tagged latitude/longitude.
GEO_ROLES = {"country", "state", "county", "city", "postcode", "latitude", "longitude"}
# A measure is one aggregation of a column, or a ratio of two summed columns.
AGGREGATIONS = {"sum", "max", "min", "count_distinct", "ratio"}
# Series colours of a visual with `color`: a light-to-dark ramp for ordered categories (the
# default when color_order is given), or distinct hues for categories without an order.
PALETTES = {"sequential", "categorical"}


class SpecError(ValueError):
    """The dashboard spec is inconsistent; the message names the offending entry."""


def measure_columns(measure: dict) -> list[str]:
    """Columns a measure reads: one for an aggregation, two for a ratio."""
    kinds = [key for key in measure if key in AGGREGATIONS]
    if len(kinds) != 1:
        raise SpecError(f"measure {measure!r} needs exactly one of {sorted(AGGREGATIONS)}")
    value = measure[kinds[0]]
    return list(value) if kinds[0] == "ratio" else [value]


def _visual_columns(visual: dict) -> list[str]:
    columns = [
        visual.get(key) for key in ("x", "color", "location", "label", "latitude", "longitude")
    ]
    columns = [c for c in columns if c] + list(visual.get("group_by", []))
    measures = [visual[key] for key in ("value", "size", "sort") if key in visual]
    y = visual.get("y", [])
    measures += y if isinstance(y, list) else [y]
    measures += visual.get("columns", []) + visual.get("tooltip", [])
    for measure in measures:
        columns += measure_columns(measure)
    return columns


def _check_map_options(name: str, visual: dict) -> None:
    """tooltip (extra measures in a map's hover), legend (its title) and range (the [low, high]
    of a diverging colour scale, its middle neutral) belong to county maps only."""
    for key in ("tooltip", "range", "legend"):
        if key in visual and visual["type"] != "county_map":
            raise SpecError(f"visual {name}: {key} is for county_map visuals only")
    span = visual.get("range", [0, 1])
    if not (
        isinstance(span, list)
        and len(span) == 2
        and all(isinstance(v, int | float) for v in span)
        and span[0] < span[1]
    ):
        raise SpecError(f"visual {name}: range must be [low, high] numbers, low < high")


def _check_geo(name: str, visual: dict, geo: dict) -> None:
    if visual["type"] == "county_map" and "county" not in geo.values():
        raise SpecError(f"visual {name}: county_map needs a column with geo role county")
    if visual["type"] == "point_map":
        for axis in ("latitude", "longitude"):
            if geo.get(visual[axis]) != axis:
                raise SpecError(f"visual {name}: column {visual[axis]} needs geo role {axis}")


def _check_clock(spec: dict, datasets: dict) -> None:
    """`clock`: the dataset and date column whose maximum is the data's clock, its time zone."""
    clock = spec.get("clock")
    if clock is None:
        return
    dataset = datasets.get(clock.get("dataset"))
    if dataset is None:
        raise SpecError(f"clock: unknown dataset {clock.get('dataset')}")
    if dataset["columns"].get(clock.get("column")) != "date":
        raise SpecError(f"clock: {clock.get('column')} is not a date column of its dataset")
    if not clock.get("timezone") or not clock.get("label"):
        raise SpecError("clock: needs a label and a timezone")


def _check_presentation(name: str, visual: dict, dataset: dict) -> None:
    if "note" in visual and not isinstance(visual["note"], str):
        raise SpecError(f"visual {name}: note must be text")
    if visual.get("palette", "sequential") not in PALETTES:
        raise SpecError(f"visual {name}: palette must be one of {sorted(PALETTES)}")
    if visual.get("partial_latest_day") and (
        visual["type"] != "line" or dataset["columns"].get(visual["x"]) != "date"
    ):
        raise SpecError(f"visual {name}: partial_latest_day needs a line over a date x")


def check(spec: dict) -> dict:
    """Raise SpecError on the first inconsistency; return the spec unchanged."""
    datasets = spec.get("datasets") or {}
    visuals = spec.get("visuals") or {}
    _check_clock(spec, datasets)
    for name, dataset in datasets.items():
        if not dataset.get("view"):
            raise SpecError(f"dataset {name}: no view")
        bad = {c: t for c, t in dataset.get("columns", {}).items() if t not in COLUMN_TYPES}
        if bad:
            raise SpecError(f"dataset {name}: unknown column types {bad}")
        for column, role in (dataset.get("geo") or {}).items():
            if column not in dataset.get("columns", {}):
                raise SpecError(f"dataset {name}: geo role for unknown column {column}")
            if role not in GEO_ROLES:
                raise SpecError(f"dataset {name}: geo role {role!r} not in {sorted(GEO_ROLES)}")
    for f in spec.get("filters", []):
        if f.get("type") not in FILTER_TYPES:
            raise SpecError(f"filter {f.get('id')}: type must be one of {sorted(FILTER_TYPES)}")
        for name in f.get("datasets", []):
            if name not in datasets:
                raise SpecError(f"filter {f['id']}: unknown dataset {name}")
            if f["column"] not in datasets[name]["columns"]:
                raise SpecError(f"filter {f['id']}: dataset {name} has no column {f['column']}")
    for name, visual in visuals.items():
        if visual.get("type") not in VISUAL_TYPES:
            raise SpecError(f"visual {name}: type must be one of {sorted(VISUAL_TYPES)}")
        dataset = datasets.get(visual.get("dataset"))
        if dataset is None:
            raise SpecError(f"visual {name}: unknown dataset {visual.get('dataset')}")
        missing = [c for c in _visual_columns(visual) if c not in dataset["columns"]]
        if missing:
            raise SpecError(f"visual {name}: dataset {visual['dataset']} has no column {missing}")
        _check_geo(name, visual, dataset.get("geo") or {})
        _check_presentation(name, visual, dataset)
        _check_map_options(name, visual)
    placed = [v for row in spec.get("layout", []) for v in row]
    unknown = [v for v in placed if v not in visuals]
    if unknown:
        raise SpecError(f"layout: unknown visuals {unknown}")
    unplaced = sorted(set(visuals) - set(placed))
    if unplaced:
        raise SpecError(f"layout: visuals not placed {unplaced}")
    return spec


@cache
def load(path: Path = SPEC_FILE) -> dict:
    """The checked spec as plain data (dicts and lists, as written in the YAML)."""
    with open(path, encoding="utf-8") as f:
        return check(yaml.safe_load(f))
