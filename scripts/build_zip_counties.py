"""Build data/zip_counties.csv: the residential ZIP codes of each county in NY, NJ and PA.

The simulator draws a case's ZIP code among its county's ZIPs. Source: the PyPI package
`zipcodes` 3.0.0 (MIT), which bundles USPS ZIP data with a county name for each ZIP. Kept: active
ZIPs of type STANDARD (PO-box-only and single-organisation "UNIQUE" ZIPs have no residents) whose
county name matches data/counties.csv in the same state. Each ZIP appears once, under the county
the package names (ZIPs that straddle a county line count for one county only).

Run once (it needs the package, not the project's environment):
    uv run --no-project --with zipcodes==3.0.0 python scripts/build_zip_counties.py
"""

import csv
from pathlib import Path

import zipcodes

DATA = Path(__file__).resolve().parents[1] / "data"


def _key(state: str, county: str) -> tuple[str, str]:
    """Names differ only in punctuation between the sources ("St Lawrence" / "St. Lawrence")."""
    return state, county.replace(".", "").lower()


def main() -> None:
    with open(DATA / "counties.csv", newline="", encoding="utf-8") as f:
        fips = {_key(r["state_code"], r["county_name"]): r["fips"] for r in csv.DictReader(f)}
    rows, unmatched = [], set()
    for state in ("NY", "NJ", "PA"):
        for z in zipcodes.filter_by(state=state, active=True, zip_code_type="STANDARD"):
            county = fips.get(_key(state, z["county"]))
            if county is None:
                unmatched.add((state, z["county"]))
                continue
            rows.append((z["zip_code"], state, county))
    rows.sort()
    missing = set(fips.values()) - {county for _, _, county in rows}
    if unmatched or missing:
        raise SystemExit(
            f"unmatched county names {sorted(unmatched)}; no ZIP for {sorted(missing)}"
        )
    with open(DATA / "zip_counties.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["zipcode", "state_code", "county_fips"])
        writer.writerows(rows)
    print(f"{len(rows)} ZIP codes for {len(fips)} counties -> {DATA / 'zip_counties.csv'}")


if __name__ == "__main__":
    main()
