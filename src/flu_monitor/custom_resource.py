"""What the custom-resource Lambdas under functions/ share: the crhelper set-up, property parsing
and boto3 clients made on first use (tests put botocore-Stubber'd clients in first).

crhelper answers CloudFormation: an exception raised by a handler becomes a FAILED response whose
Reason is the exception text (crhelper keeps the last 240 characters of a longer one), so every
error raised here and in the functions is short and names its cause last.
"""

from __future__ import annotations

import logging
import os
import re

# Seconds crhelper waits before answering a Delete so the last log lines reach CloudWatch; its
# default of 120 s slows every stack deletion by two minutes per custom resource.
SLEEP_ON_DELETE_S = 5
# crhelper's poll_* functions run on an EventBridge schedule of this many minutes (its minimum).
POLLING_INTERVAL_MIN = 1

log = logging.getLogger("flu_monitor.custom_resource")


class PropertyError(ValueError):
    """A resource property is missing or malformed; the message names the property."""


def make_helper(polling: bool = False):
    """A crhelper CfnResource with a short delete sleep (and 1-minute polling when asked)."""
    from crhelper import CfnResource

    kwargs = {"polling_interval": POLLING_INTERVAL_MIN} if polling else {}
    return CfnResource(log_level="INFO", sleep_on_delete=SLEEP_ON_DELETE_S, **kwargs)


def use_bundle_home(module_file: str) -> None:
    """Inside a Lambda bundle, point flu_monitor.paths at the bundled sql/, data/, quicksight/.

    Call before importing flu_monitor.paths. In the repository (no bundled package next to the
    handler) nothing changes and the checkout's files are used."""
    here = os.path.dirname(os.path.abspath(module_file))
    if os.path.isdir(os.path.join(here, "flu_monitor")):
        os.environ.setdefault("FLU_MONITOR_HOME", here)


class Clients:
    """boto3 clients by (service, region), created on first use."""

    def __init__(self):
        self._made: dict[tuple[str, str | None], object] = {}

    def __call__(self, service: str, region: str | None = None):
        key = (service, region)
        if key not in self._made:
            import boto3

            self._made[key] = boto3.client(service, region_name=region)
        return self._made[key]

    def put(self, service: str, client, region: str | None = None) -> None:
        self._made[(service, region)] = client

    def clear(self) -> None:
        self._made.clear()


def props(event: dict) -> dict:
    return event.get("ResourceProperties") or {}


def old_props(event: dict) -> dict:
    return event.get("OldResourceProperties") or {}


def required(properties: dict, name: str) -> str:
    value = str(properties.get(name, "")).strip()
    if not value:
        raise PropertyError(f"property {name} is required")
    return value


def optional(properties: dict, name: str, default: str = "") -> str:
    value = str(properties.get(name, "")).strip()
    return value or default


def flag(properties: dict, name: str, default: bool = False) -> bool:
    """A "true"/"false" property (CloudFormation passes booleans as strings)."""
    value = str(properties.get(name, "")).strip().lower()
    if not value:
        return default
    if value not in ("true", "false"):
        raise PropertyError(f"property {name} must be true or false, not {value!r}")
    return value == "true"


def integer(properties: dict, name: str, default: int | None = None, minimum: int | None = None):
    raw = str(properties.get(name, "")).strip()
    if not raw:
        if default is None:
            raise PropertyError(f"property {name} is required")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise PropertyError(f"property {name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise PropertyError(f"property {name} must be at least {minimum}, not {value}")
    return value


def one_of(properties: dict, *names: str) -> tuple[str, str]:
    """(name, value) of exactly one non-empty property among names."""
    given = [(n, str(properties.get(n, "")).strip()) for n in names]
    given = [(n, v) for n, v in given if v]
    if len(given) != 1:
        raise PropertyError(f"exactly one of {' | '.join(names)} must be set, got {len(given)}")
    return given[0]


def partition(event: dict) -> str:
    """The AWS partition (aws, aws-cn, aws-us-gov) of the stack sending the event."""
    match = re.match(r"arn:([\w-]+):", event.get("StackId", ""))
    return match.group(1) if match else "aws"


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def error_message(exc: Exception) -> str:
    """The AWS error message of a botocore ClientError, else str(exc)."""
    return getattr(exc, "response", {}).get("Error", {}).get("Message", "") or str(exc)
