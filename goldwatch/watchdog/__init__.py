"""goldwatch.watchdog: the service side -- registry of versions, rollback, gate, alerting, the sidecar.

Each part is its own subpackage (e.g. :mod:`goldwatch.watchdog.registry`), imported when used: importing this
package imports nothing else, so ``import goldwatch`` and ``goldwatch --help`` stay light.
"""
