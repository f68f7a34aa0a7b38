"""Tests of goldwatch.watchdog.alerts (a package, so its module names cannot collide with other areas)."""
