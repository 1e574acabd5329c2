"""POST an alert's JSON body to a webhook (Slack incoming webhooks, chat bridges, your own
receiver), retried with back-off. Standard library only."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from flu_monitor import __version__

TIMEOUT_S = 10.0
FIRST_RETRY_S = 0.5  # `notify --retry-after`
RETRIES = 4


def retry_delays(first_s: float = FIRST_RETRY_S) -> tuple[float, ...]:
    """The waits before each retry of a POST within a round, doubling from first_s (0.5, 1, 2, 4
    s by default: 7.5 s for a webhook that is down, then the notifier's own back-off between
    rounds)."""
    return tuple(first_s * 2**k for k in range(RETRIES))


RETRY_DELAYS_S = retry_delays()


class DeliveryError(RuntimeError):
    """The webhook did not accept the notification; the message says how it answered."""


def post(url: str, body: dict, idempotency_key: str, delays=RETRY_DELAYS_S, sleep=time.sleep):
    """POST `body` as JSON; a 2xx answer is delivery. Connection errors, timeouts, 408, 429 and
    5xx are retried after each of `delays`; any other status fails at once (a wrong URL does
    not heal). The Idempotency-Key header repeats the body's notification_id."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            "User-Agent": f"flu-monitor/{__version__}",
        },
    )
    for attempt in range(len(delays) + 1):
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
                response.read()
                return
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {exc.reason}"
            if exc.code not in (408, 429) and exc.code < 500:
                raise DeliveryError(f"{url} answered {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = str(getattr(exc, "reason", exc))
        if attempt < len(delays):
            sleep(delays[attempt])
    raise DeliveryError(f"{url}: {reason} (after {len(delays) + 1} attempts)")
