"""The dashboard spec (quicksight/dashboard.yaml): parsed and checked once, for both renderers.

The local dashboard draws it; the QuickSight publisher compiles it into a Definition. `parse`
turns the YAML document into the typed `Spec` below and catches a broken reference (unknown
dataset, column, visual or filter) before either renderer runs; the renderers read only the
typed objects, so a measure's kind or a visual's columns are worked out here and nowhere else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from flu_monitor.paths import QUICKSIGHT_DIR

SPEC_FILE = QUICKSIGHT_DIR / "dashboard.yaml"


class VisualType(enum.StrEnum):
    KPI = "kpi"
    LINE = "line"
    BAR = "bar"
    STACKED_BAR = "stacked_bar"
    GROUPED_BAR = "grouped_bar"
    COUNTY_MAP = "county_map"
    POINT_MAP = "point_map"
    TABLE = "table"


class ColumnType(enum.StrEnum):
    DATE = "date"
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"


class FilterType(enum.StrEnum):
    MULTI_SELECT = "multi_select"
    DATE_RANGE = "date_range"


class MeasureKind(enum.StrEnum):
    """A measure is one aggregation of a column, or a ratio of two summed columns."""

    SUM = "sum"
    MAX = "max"
    MIN = "min"
    COUNT_DISTINCT = "count_distinct"
    RATIO = "ratio"


# Geographic roles a dataset may give its columns (`geo:`). QuickSight maps need them: it geocodes
# a county by name within its state, and plots points from columns tagged latitude/longitude.
GEO_ROLES = {"country", "state", "county", "city", "postcode", "latitude", "longitude"}
# Series colours of a visual with `color`: a light-to-dark ramp for ordered categories (the
# default when color_order is given), or distinct hues for categories without an order.
PALETTES = {"sequential", "categorical"}
# The keys of a visual naming one dimension column, in the order its rows carry them.
DIMENSION_KEYS = ("x", "color", "location", "label", "latitude", "longitude")


class SpecError(ValueError):
    """The dashboard spec is inconsistent; the message names the offending entry."""


@dataclass(frozen=True)
class Measure:
    kind: MeasureKind
    columns: tuple[str, ...]  # one column; a ratio's numerator and denominator
    label: str | None = None
    percent: bool = False
    decimals: int | None = None

    @property
    def key(self) -> str:
        """A stable machine name, e.g. `sum_cases`, `ratio_admissions_cases`."""
        return "_".join([self.kind, *self.columns])

    def same_value(self, other: Measure) -> bool:
        """Whether both measure the same thing (however each is labelled or formatted)."""
        return (self.kind, self.columns) == (other.kind, other.columns)


@dataclass(frozen=True)
class Sort:
    measure: Measure
    descending: bool = False


@dataclass(frozen=True)
class Visual:
    name: str
    type: VisualType
    title: str
    dataset: str
    width: int | None = None  # twelfths of the page
    x: str | None = None
    color: str | None = None
    location: str | None = None
    label: str | None = None
    latitude: str | None = None
    longitude: str | None = None
    group_by: tuple[str, ...] = ()
    value: Measure | None = None  # kpi, county_map
    size: Measure | None = None  # point_map
    y: tuple[Measure, ...] = ()  # line (one), bars
    columns: tuple[Measure, ...] = ()  # table
    tooltip: tuple[Measure, ...] = ()  # county_map
    sort: Sort | None = None
    limit: int | None = None
    order: tuple[str, ...] = ()
    color_order: tuple[str, ...] | None = None
    palette: str | None = None
    note: str | None = None
    partial_latest_day: bool = False
    legend: str | None = None
    range: tuple[float, float] | None = None

    @property
    def dimensions(self) -> list[str]:
        """Dimension columns, in the order a query returns them."""
        named = [getattr(self, key) for key in DIMENSION_KEYS]
        return [c for c in named if c] + list(self.group_by)

    @property
    def measures(self) -> list[Measure]:
        """Measures, in the order a query returns them (after the dimensions)."""
        if self.type is VisualType.TABLE:
            return list(self.columns)
        main = [self.value] if self.value else [self.size] if self.size else list(self.y)
        return main + list(self.tooltip)

    def columns_read(self) -> list[str]:
        """Every column of its dataset the visual reads."""
        measures = [m for m in (self.value, self.size) if m] + list(self.y)
        measures += [self.sort.measure] if self.sort else []
        measures += list(self.columns) + list(self.tooltip)
        return self.dimensions + [c for m in measures for c in m.columns]


@dataclass(frozen=True)
class Dataset:
    name: str
    view: str
    columns: dict[str, ColumnType]
    geo: dict[str, str]  # column: geographic role


@dataclass(frozen=True)
class Filter:
    id: str
    label: str
    type: FilterType
    column: str
    datasets: tuple[str, ...]
    values: tuple[str, ...] | None = None  # multi_select: the choices (None: any value)
    default_last_days: int = 30  # date_range: the rolling window's length


@dataclass(frozen=True)
class Clock:
    """The dataset and date column whose maximum is the data's clock, and its time zone."""

    dataset: str
    column: str
    label: str
    timezone: str


@dataclass(frozen=True)
class Spec:
    title: str
    subtitle: str | None
    refresh_seconds: int
    clock: Clock | None
    datasets: dict[str, Dataset]
    filters: tuple[Filter, ...]
    layout: tuple[tuple[str, ...], ...]
    visuals: dict[str, Visual]

    def used_datasets(self) -> list[str]:
        """The datasets the visuals read, sorted."""
        return sorted({v.dataset for v in self.visuals.values()})


# --- parsing ------------------------------------------------------------------------------------


def _one_of(enum_type: type[enum.StrEnum], value: Any, where: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        choices = sorted(e.value for e in enum_type)
        raise SpecError(f"{where}: type must be one of {choices}") from None


def parse_measure(raw: Any) -> Measure:
    """A measure: exactly one of the aggregations (a ratio names two columns), with `label`,
    `percent` and `decimals` saying how it reads."""
    kinds = [key for key in raw if key in set(MeasureKind)] if isinstance(raw, dict) else []
    if len(kinds) != 1:
        raise SpecError(
            f"measure {raw!r} needs exactly one of {sorted(e.value for e in MeasureKind)}"
        )
    kind = MeasureKind(kinds[0])
    value = raw[kind]
    columns = tuple(value) if kind is MeasureKind.RATIO else (value,)
    if kind is MeasureKind.RATIO and len(columns) != 2:
        raise SpecError(f"measure {raw!r}: a ratio names two columns")
    return Measure(kind, columns, raw.get("label"), bool(raw.get("percent")), raw.get("decimals"))


def _measures(raw: Any) -> tuple[Measure, ...]:
    return tuple(parse_measure(m) for m in (raw if isinstance(raw, list) else [raw]))


def _visual(name: str, raw: dict[str, Any]) -> Visual:
    kind = _one_of(VisualType, raw.get("type"), f"visual {name}")
    if "note" in raw and not isinstance(raw["note"], str):
        raise SpecError(f"visual {name}: note must be text")
    _check_map_options(name, raw)
    sort = raw.get("sort")
    span = raw.get("range")
    return Visual(
        name=name,
        type=kind,
        title=raw.get("title", ""),
        dataset=raw.get("dataset", ""),
        width=raw.get("width"),
        **{key: raw.get(key) for key in DIMENSION_KEYS},
        group_by=tuple(raw.get("group_by", [])),
        value=parse_measure(raw["value"]) if "value" in raw else None,
        size=parse_measure(raw["size"]) if "size" in raw else None,
        y=_measures(raw["y"]) if "y" in raw else (),
        columns=tuple(parse_measure(m) for m in raw.get("columns", [])),
        tooltip=tuple(parse_measure(m) for m in raw.get("tooltip", [])),
        sort=Sort(parse_measure(sort), bool(sort.get("descending"))) if sort else None,
        limit=int(raw["limit"]) if "limit" in raw else None,
        order=tuple(str(v) for v in raw.get("order") or ()),
        color_order=(tuple(str(v) for v in raw["color_order"]) if "color_order" in raw else None),
        palette=raw.get("palette"),
        note=raw.get("note"),
        partial_latest_day=bool(raw.get("partial_latest_day")),
        legend=raw.get("legend"),
        range=None if span is None else (span[0], span[1]),
    )


def _check_map_options(name: str, raw: dict[str, Any]) -> None:
    """tooltip (extra measures in a map's hover), legend (its title) and range (the [low, high]
    of a diverging colour scale, its middle neutral) belong to county maps only."""
    for key in ("tooltip", "range", "legend"):
        if key in raw and raw["type"] != VisualType.COUNTY_MAP:
            raise SpecError(f"visual {name}: {key} is for county_map visuals only")
    span = raw.get("range", [0, 1])
    if not (
        isinstance(span, list)
        and len(span) == 2
        and all(isinstance(v, int | float) for v in span)
        and span[0] < span[1]
    ):
        raise SpecError(f"visual {name}: range must be [low, high] numbers, low < high")


def _check_geo(visual: Visual, geo: dict[str, str]) -> None:
    if visual.type is VisualType.COUNTY_MAP and "county" not in geo.values():
        raise SpecError(f"visual {visual.name}: county_map needs a column with geo role county")
    if visual.type is VisualType.POINT_MAP:
        for axis in ("latitude", "longitude"):
            column = getattr(visual, axis)
            if geo.get(column) != axis:
                raise SpecError(f"visual {visual.name}: column {column} needs geo role {axis}")


def _clock(raw: dict[str, Any] | None, datasets: dict[str, Dataset]) -> Clock | None:
    """`clock`: the dataset and date column whose maximum is the data's clock, its time zone."""
    if raw is None:
        return None
    dataset = datasets.get(raw.get("dataset"))  # type: ignore[arg-type]
    if dataset is None:
        raise SpecError(f"clock: unknown dataset {raw.get('dataset')}")
    if dataset.columns.get(raw.get("column")) != ColumnType.DATE:  # type: ignore[arg-type]
        raise SpecError(f"clock: {raw.get('column')} is not a date column of its dataset")
    if not raw.get("timezone") or not raw.get("label"):
        raise SpecError("clock: needs a label and a timezone")
    return Clock(raw["dataset"], raw["column"], raw["label"], raw["timezone"])


def _check_presentation(visual: Visual, dataset: Dataset) -> None:
    name = visual.name
    if (visual.palette or "sequential") not in PALETTES:
        raise SpecError(f"visual {name}: palette must be one of {sorted(PALETTES)}")
    if visual.partial_latest_day and (
        visual.type is not VisualType.LINE or dataset.columns.get(visual.x or "") != "date"
    ):
        raise SpecError(f"visual {name}: partial_latest_day needs a line over a date x")


def _dataset(name: str, raw: dict[str, Any]) -> Dataset:
    if not raw.get("view"):
        raise SpecError(f"dataset {name}: no view")
    columns = raw.get("columns", {})
    bad = {c: t for c, t in columns.items() if t not in set(ColumnType)}
    if bad:
        raise SpecError(f"dataset {name}: unknown column types {bad}")
    geo = raw.get("geo") or {}
    for column, role in geo.items():
        if column not in columns:
            raise SpecError(f"dataset {name}: geo role for unknown column {column}")
        if role not in GEO_ROLES:
            raise SpecError(f"dataset {name}: geo role {role!r} not in {sorted(GEO_ROLES)}")
    return Dataset(name, raw["view"], {c: ColumnType(t) for c, t in columns.items()}, dict(geo))


def _filter(raw: dict[str, Any], datasets: dict[str, Dataset]) -> Filter:
    kind = _one_of(FilterType, raw.get("type"), f"filter {raw.get('id')}")
    for name in raw.get("datasets", []):
        if name not in datasets:
            raise SpecError(f"filter {raw['id']}: unknown dataset {name}")
        if raw["column"] not in datasets[name].columns:
            raise SpecError(f"filter {raw['id']}: dataset {name} has no column {raw['column']}")
    values = raw.get("values")
    return Filter(
        id=raw["id"],
        label=raw["label"],
        type=kind,
        column=raw["column"],
        datasets=tuple(raw.get("datasets", [])),
        values=None if values is None else tuple(str(v) for v in values),
        default_last_days=int(raw.get("default_last_days", 30)),
    )


def parse(document: dict[str, Any]) -> Spec:
    """The typed spec of a YAML document; SpecError names the first inconsistency."""
    datasets = {n: _dataset(n, d) for n, d in (document.get("datasets") or {}).items()}
    clock = _clock(document.get("clock"), datasets)
    filters = tuple(_filter(f, datasets) for f in document.get("filters", []))
    visuals = {}
    for name, raw in (document.get("visuals") or {}).items():
        visual = _visual(name, raw)
        dataset = datasets.get(visual.dataset)
        if dataset is None:
            raise SpecError(f"visual {name}: unknown dataset {raw.get('dataset')}")
        missing = [c for c in visual.columns_read() if c not in dataset.columns]
        if missing:
            raise SpecError(f"visual {name}: dataset {visual.dataset} has no column {missing}")
        _check_geo(visual, dataset.geo)
        _check_presentation(visual, dataset)
        if visual.type is VisualType.LINE and len(visual.y) != 1:
            raise SpecError(f"visual {name}: a line draws one y measure")
        visuals[name] = visual
    layout = tuple(tuple(row) for row in document.get("layout", []))
    placed = [v for row in layout for v in row]
    unknown = [v for v in placed if v not in visuals]
    if unknown:
        raise SpecError(f"layout: unknown visuals {unknown}")
    unplaced = sorted(set(visuals) - set(placed))
    if unplaced:
        raise SpecError(f"layout: visuals not placed {unplaced}")
    return Spec(
        title=document["title"],
        subtitle=document.get("subtitle"),
        refresh_seconds=int(document.get("refresh_seconds", 30)),
        clock=clock,
        datasets=datasets,
        filters=filters,
        layout=layout,
        visuals=visuals,
    )


def load_document(path: Path = SPEC_FILE) -> dict[str, Any]:
    """The spec file as written (plain dicts and lists), unchecked."""
    with open(path, encoding="utf-8") as f:
        document: dict[str, Any] = yaml.safe_load(f)
    return document


@cache
def load(path: Path = SPEC_FILE) -> Spec:
    """The checked, typed spec (read once per process)."""
    return parse(load_document(path))
