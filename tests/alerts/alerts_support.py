"""Constants shared by the alert tests (a module, not conftest, so test files can import it by name)."""

from __future__ import annotations

from goldwatch.watchdog.alerts import RetryPolicy

# A made-up integration key with PagerDuty's shape (32 characters). Tests assert it never reaches logs or disk.
ROUTING_KEY = "R0ut1ngK3yTESTe93facc04764012d7b"
assert len(ROUTING_KEY) == 32

# Milliseconds instead of seconds so an outage of many retries runs in well under a second.
FAST = RetryPolicy(base_s=0.005, max_delay_s=0.03, jitter=0.5, max_age_s=3600.0, lease_s=5.0)
