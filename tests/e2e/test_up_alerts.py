"""`flu-monitor up --alert-webhook URL` with the real pipeline (Kafka, the simulator, the
ingester, the refresher, PostgreSQL): the county_outbreak scenario's Tompkins County outbreak
reaches the webhook once and up's console once, and stays at once while the county stays in alert.
"""

import re
import time

import pytest

from flu_monitor.paths import SCENARIO_DIR
from tests.e2e.conftest import UpProcess
from tests.e2e.test_up import state_home  # noqa: F401 - the fixture
from tests.fixtures.webhook import Receiver

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
QUIET_S = 20.0  # after the alert: rounds every 5 s and refreshes every second, none repeats it


def test_the_planted_outbreak_reaches_the_webhook_and_the_console_once(state_home):  # noqa: F811
    hook = Receiver()
    up = UpProcess(
        state_home,
        "--scenario", str(SCENARIO_DIR / "county_outbreak.yaml"),
        "--history-days", "22",
        "--seed", "3",
        "--alert-webhook", hook.url,
    )  # fmt: skip
    try:
        up.wait_for_output("Dashboard: http://127.0.0.1", timeout_s=300)
        deadline = time.monotonic() + 120
        while not [i for i in hook.ids() if i.startswith("36109:")]:
            assert time.monotonic() < deadline, (hook.ids(), up.text())
            assert up.process.poll() is None, up.text()
            time.sleep(0.5)
        time.sleep(QUIET_S)
        tompkins = [b for b in hook.bodies if b["notification_id"].startswith("36109:")]
        assert len(tompkins) == 1, tompkins
        assert tompkins[0]["text"].startswith("Flu outbreak alert: Tompkins County, NY")
        assert re.match(r"http://127\.0\.0\.1:\d+/$", tompkins[0]["dashboard_url"])
        assert len(hook.ids()) == len(set(hook.ids())), hook.ids()  # no alert twice
        console = [line for line in up.text().splitlines() if line.startswith("ALERT ")]
        assert len([line for line in console if "(county 36109)" in line]) == 1, console
        assert up.interrupt() == 0, up.text()
    finally:
        up.kill()
        hook.close()
