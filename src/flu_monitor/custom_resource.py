"""What the custom-resource Lambdas under functions/ share: the crhelper set-up, the answer when a
function cannot initialise, property parsing and boto3 clients made on first use (tests put
botocore-Stubber'd clients in first).

crhelper answers CloudFormation: an exception raised by a handler becomes a FAILED response whose
Reason is the exception text (crhelper keeps the last 240 characters of a longer one), so every
error raised here and in the functions is short and names its cause last.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from crhelper import CfnResource

# Seconds crhelper waits before answering a Delete so the last log lines reach CloudWatch; its
# default of 120 s slows every stack deletion by two minutes per custom resource.
SLEEP_ON_DELETE_S = 5
# crhelper's poll_* functions run on an EventBridge schedule of this many minutes (its minimum).
POLLING_INTERVAL_MIN = 1

log = logging.getLogger("flu_monitor.custom_resource")


class PropertyError(ValueError):
    """A resource property is missing or malformed; the message names the property."""


# PhysicalResourceId answered to a Create that failed because the function could not initialise:
# the Delete CloudFormation sends when it rolls back carries it, and succeeds (nothing exists).
NOT_CREATED_PREFIX = "not-created-"


class Helper(CfnResource):
    """crhelper's CfnResource that also answers when the function's module cannot initialise.

    A function runs everything its module does on load (imports, reading its bundle) inside
    `with helper.initialising():`. Should that raise, the module still loads, and every request
    is answered FAILED at once with the cause as Reason — instead of Lambda failing the import
    and CloudFormation waiting out the resource's ServiceTimeout for an answer that never comes.

    crhelper's own init_failure() is not used: it answers with an empty PhysicalResourceId
    (custom-resource-helper#67), which CloudFormation refuses — "The value must be a non-empty
    string" (crpg-ref-responses.html) — reporting "Invalid PhysicalResourceId" instead of the
    cause. Here the cause is raised from stand-in handlers, so crhelper answers the usual way.
    """

    init_error: str | None = None

    @contextmanager
    def initialising(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            log.exception("the function cannot initialise")
            self.init_error = f"the function cannot initialise: {type(exc).__name__}: {exc}"

    def __call__(self, event, context):
        if self.init_error is not None:
            self._stand_in_for_the_handlers()
        super().__call__(event, context)

    def _stand_in_for_the_handlers(self) -> None:
        def fail(event, _context):
            if event["RequestType"] == "Create":
                # crhelper keeps an id set before the handler raised (no generated one).
                self.PhysicalResourceId = NOT_CREATED_PREFIX + event["RequestId"]
            raise RuntimeError(self.init_error)

        def delete(event, context):
            if event.get("PhysicalResourceId", "").startswith(NOT_CREATED_PREFIX):
                return None  # the Create failed the same way: there is nothing to delete
            fail(event, context)  # something exists, and this code cannot remove it

        for register in (self.create, self.update):
            register(fail)
        self.delete(delete)
        # Answer now, never schedule polling: None is crhelper's own "no polling" state (its
        # __init__ sets _poll_*_func = None), which its stub's Callable type leaves out.
        for register in (self.poll_create, self.poll_update, self.poll_delete):
            register(None)  # type: ignore[arg-type]


def make_helper(polling: bool = False) -> Helper:
    """A crhelper CfnResource with a short delete sleep (and 1-minute polling when asked)."""
    if polling:
        return Helper(
            log_level="INFO",
            sleep_on_delete=SLEEP_ON_DELETE_S,
            polling_interval=POLLING_INTERVAL_MIN,
        )
    return Helper(log_level="INFO", sleep_on_delete=SLEEP_ON_DELETE_S)


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
