"""docs/architecture.png is drawn from code (docs/architecture.py, `diagrams` + Graphviz): one
cluster per nested stack of template.yaml, the events' path through them, and the committed
picture is the one the code draws (redraw with `make diagram`)."""

import importlib.util
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "architecture.png"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def architecture():
    """docs/architecture.py as a module (its draw() needs Graphviz's dot)."""
    spec = importlib.util.spec_from_file_location("architecture", ROOT / "docs" / "architecture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def drawing(architecture, tmp_path_factory) -> dict:
    """The drawn graph, read back from Graphviz's SVG: cluster labels, node labels (lines joined
    by newlines), and edges as (from, to, dashed) by node label."""
    svg = architecture.draw(tmp_path_factory.mktemp("diagram") / "architecture", "svg")
    groups = ET.parse(svg).getroot().iter(f"{SVG}g")
    by_class: dict[str, list] = {}
    for group in groups:
        by_class.setdefault(group.get("class"), []).append(group)
    labels = {
        g.findtext(f"{SVG}title"): "\n".join(t.text for t in g.iter(f"{SVG}text"))
        for g in by_class["node"]
    }
    edges = set()
    for g in by_class["edge"]:
        tail, head = g.findtext(f"{SVG}title").split("->")
        dashed = g.find(f"{SVG}path").get("stroke-dasharray") is not None
        edges.add((labels[tail], labels[head], dashed))
    clusters = [g.findtext(f"{SVG}title").removeprefix("cluster_") for g in by_class["cluster"]]
    return {"clusters": clusters, "nodes": set(labels.values()), "edges": edges}


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_every_nested_stack_is_a_cluster(drawing, nested):
    stacks = sorted(Path(name).stem for name in nested)
    assert stacks == [
        "alerts", "connect", "dashboards", "events", "network", "streaming", "warehouse"
    ]  # fmt: skip
    for stack in stacks:
        assert [c for c in drawing["clusters"] if f"{stack} stack" in c], (stack, drawing)


def test_solid_edges_are_the_events_path_from_either_source_to_the_staff(drawing):
    events = sorted((a, b) for a, b, dashed in drawing["edges"] if not dashed)
    simulator = "simulator\n(VPC Lambda)"
    connector = "MSK Connect\ndatagen connector"
    msk = "Amazon MSK\ntopic flu_cases\nIAM auth, TLS"
    redshift = "Redshift Serverless\nor provisioned\nstreaming MVs"
    vpc_connection, dashboard = "QuickSight\nVPC connection", "QuickSight\ndashboard"
    assert events == sorted(
        [
            (simulator, msk),
            (connector, msk),
            (msk, redshift),
            (redshift, vpc_connection),
            (vpc_connection, dashboard),
            (dashboard, "public-health staff"),
        ]
    )


def test_committed_picture_is_what_the_code_draws(architecture, tmp_path):
    png = architecture.draw(tmp_path / "architecture")
    assert _png_size(png) == _png_size(COMMITTED), "docs/architecture.png is stale: make diagram"


def test_readme_shows_the_picture():
    assert "](docs/architecture.png)" in (ROOT / "README.md").read_text()
