"""Where the repository's shared sources of truth live.

The package is installed editable from the repository, so the contract, reference data, SQL,
scenarios and dashboard spec are read from the checkout (one copy, shared with the AWS side).
FLU_MONITOR_HOME points elsewhere, e.g. inside a Lambda bundle.
"""

import os
from pathlib import Path

ROOT = Path(os.environ.get("FLU_MONITOR_HOME", Path(__file__).resolve().parents[2]))

SCHEMA_FILE = ROOT / "schemas" / "flu_case.schema.json"
DATA_DIR = ROOT / "data"
SQL_DIR = ROOT / "sql"
SCENARIO_DIR = ROOT / "scenarios"
QUICKSIGHT_DIR = ROOT / "quicksight"
CONNECTOR_DIR = ROOT / "connector"
# Local runtime state (Kafka logs, PostgreSQL cluster, process logs); never committed.
STATE_DIR = Path(os.environ.get("FLU_MONITOR_STATE", ROOT / ".state"))
