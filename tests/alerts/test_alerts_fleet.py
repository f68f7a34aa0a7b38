"""Many sidecars, one problem, one PagerDuty incident: every host derives the same dedup key.

Three sidecar processes (each its own pod name, its own outbox, its own served version and summary) report the same
corrupted model to the strict PagerDuty stand-in: PagerDuty sees three triggers and ONE incident, because the key
is a function of (model, check class) only -- nothing host-specific enters it.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

from goldwatch.watchdog.alerts.dedup import dedup_key
from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub, incidents_for

from .alerts_support import ROUTING_KEY

SIDECAR = """
import sys
from pathlib import Path
from goldwatch.checks import Check
from goldwatch.watchdog.alerts import AlertManager, Outbox, PagerDutySink
from tests.alerts.alerts_support import FAST, ROUTING_KEY

url, outbox, version = sys.argv[1:4]
sink = PagerDutySink(ROUTING_KEY, events_url=url, timeout_s=5.0, rate_limit_per_minute=None)
box = Outbox.open(Path(outbox), policy=FAST, seed=0)
mgr = AlertManager(box, [sink])  # source: this pod (POD_NAME)
check = Check(name="integrity:weights", status="fail", summary=f"block 3 differs (served v{version})")
outcome = mgr.trigger("fraud", "integrity", checks=[check], served_version=version)
report = mgr.flush(timeout_s=10.0)
print(outcome.dedup_key, mgr.source)
mgr.close()
"""


def test_the_dedup_key_takes_nothing_host_specific() -> None:
    assert list(inspect.signature(dedup_key).parameters) == ["model", "check_class", "namespace"]
    assert dedup_key("fraud", "integrity") == "goldwatch/fraud/integrity"


def test_three_sidecars_one_incident(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    with PagerDutyStub(hang_s=10.0) as stub:
        keys, sources = set(), set()
        procs = []
        for i, version in enumerate(("7", "7", "6")):
            env = {**os.environ, "POD_NAME": f"inference-{i}", "HOSTNAME": f"inference-{i}",
                   "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
            procs.append(subprocess.Popen(
                [sys.executable, "-c", SIDECAR, stub.url, str(tmp_path / f"outbox-{i}.sqlite"), version],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            key, source = out.split()
            keys.add(key)
            sources.add(source)
        assert keys == {dedup_key("fraud", "integrity")}
        assert sources == {"inference-0", "inference-1", "inference-2"}  # each says where it saw it
        triggers = [r for r in stub.accepted if r.body.get("event_action") == "trigger"]
        assert len(triggers) == 3
        assert {r.body["routing_key"] for r in triggers} == {ROUTING_KEY}
        incidents = incidents_for(stub, dedup_key("fraud", "integrity"))
        assert len(incidents) == 1
        assert len(incidents[0].events) == 3  # every sidecar's evidence lands on the one incident
        assert stub.violations == []
