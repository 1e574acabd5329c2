#!/usr/bin/env python3
"""Run parliament on every IAM policy of the templates, under every combination of conditions.

Each policy is evaluated with realistic sample ARNs (scripts/cfn_template.py), so parliament can
check actions, resource ARN shapes and condition keys. Exit status 1 on any finding.

    python scripts/lint_iam_policies.py template.yaml nested/*.yaml
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn_template  # noqa: E402

with warnings.catch_warnings():  # parliament imports pkg_resources, which warns on import
    warnings.simplefilter("ignore")
    from parliament import analyze_policy_string  # noqa: E402


# Findings accepted on purpose, each with its reason: (template:resource, parliament issue).
ACCEPTED = {
    ("nested/warehouse.yaml:SqlRunnerRole", "PERMISSIONS_MANAGEMENT_ACTIONS"): (
        "crhelper polls past 15 minutes by letting an EventBridge rule invoke the function, and "
        "always calls lambda:AddPermission/RemovePermission itself; both are limited to the "
        "function's own ARN, and AddPermission to the events.amazonaws.com principal."
    ),
}


def findings(paths: list[Path]) -> tuple[int, list[str]]:
    seen: set[str] = set()
    problems: list[str] = []
    accepted: set[tuple[str, str]] = set()
    for path in paths:
        template = cfn_template.load(path.resolve())
        for case in template.condition_cases():
            for policy in cfn_template.policies(case):
                # parliament models identity and resource policies; trust policies are checked
                # by tests/templates/test_iam.py instead.
                if policy.kind == "trust" or not case.exists(policy.resource):
                    continue
                document = json.dumps(case.evaluate(policy.document), sort_keys=True)
                if (policy.where(), document) in seen:
                    continue
                seen.add((policy.where(), document))
                analyzed = analyze_policy_string(document, include_community_auditors=True)
                for finding in analyzed.findings:
                    key = (f"{template.name}:{policy.resource}", finding.issue)
                    if key in ACCEPTED:
                        accepted.add(key)
                    else:
                        problems.append(f"{policy.where()}: {finding.issue} {finding.detail}")
    for key in sorted(accepted):
        print(f"accepted {key[1]} on {key[0]}: {ACCEPTED[key]}")
    return len(seen), problems


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [
        cfn_template.ROOT_TEMPLATE,
        *sorted(cfn_template.NESTED_DIR.glob("*.yaml")),
    ]
    checked, problems = findings(paths)
    for problem in problems:
        print(problem)
    print(f"parliament: {checked} policy documents checked, {len(problems)} findings")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
