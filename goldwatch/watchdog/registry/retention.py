"""Retention: keep the newest K known-good versions of a model, retire the rest and free their bytes.

Trees that no version names (left by an ``add`` that crashed between storing and registering) are deleted too.
Never retired: the version being served, and the newest known-good version whose artifact re-verifies (the last
verified one), whatever K says. Quarantined versions keep their bytes: they are evidence. Retired versions lose
their artifacts (unless another live version shares the same bytes), but keep their rows and audit trail.

>>> import tempfile, pathlib
>>> from goldwatch.watchdog.registry import Registry
>>> with tempfile.TemporaryDirectory() as d:
...     reg = Registry.open(pathlib.Path(d, "reg"))
...     for i in range(1, 5):
...         p = pathlib.Path(d, f"w{i}.bin"); _ = p.write_bytes(bytes([i]) * 100)
...         _ = reg.promote("m", reg.add("m", p).version, reason="approved", serve=False)
...     report = reg.apply_retention("m", keep=2)
...     reg.close()
>>> report.kept, report.retired, report.deleted_bytes
(['4', '3'], ['2', '1'], 200)
"""

from __future__ import annotations

from goldwatch.errors import RegistryError
from goldwatch.watchdog.registry._integrity_adapter import verify
from goldwatch.watchdog.registry.ledger import Ledger
from goldwatch.watchdog.registry.models import RetentionReport

__all__ = ["apply_retention"]


def apply_retention(ledger: Ledger, model: str, *, keep: int, actor: str) -> RetentionReport:
    """The body of :meth:`Registry.apply_retention` (call that instead).

    Runs under the exclusive store lock (no add, promote or rollback is reading or writing the store anywhere in
    the fleet meanwhile); the retirements are one transaction that re-checks, with the doomed versions' rows
    locked, that each is still known-good and served by no host.
    """
    if not isinstance(keep, int) or keep < 1:
        raise RegistryError(f"keep must be a whole number >= 1, got {keep!r}", where="registry.keep_known_good",
                            hint="keep at least one known-good version, or there is nothing to roll back to")
    ledger.require_model(model)
    report = RetentionReport(model=model)
    db, store = ledger.db, ledger.store
    with db.lock("store"):
        served = ledger.hosts_serving(model)
        newest_first = list(reversed(ledger.list(model, state="known-good")))
        last_verified = next((mv.version for mv in newest_first if verify(mv.path, mv.manifest_path).ok), None)
        doomed = []
        for i, mv in enumerate(newest_first):
            if i < keep or mv.version in served or mv.version == last_verified:
                report.kept.append(mv.version)
            else:
                doomed.append(mv)
        # Trees no version row names: left by an `add` that crashed between storing and registering.
        named = {r[0] for r in db.query("SELECT tree FROM versions")}
        for tree in store.tree_names():
            if tree not in named:
                report.deleted_bytes += store.delete_tree(tree)
        if not doomed:
            return report
        retired = []
        with db.transaction():
            # Lock them first: a host switching to one of them either committed already or waits for this.
            ledger.lock_versions(model, {mv.version: True for mv in doomed})
            served = ledger.hosts_serving(model)  # again, under the locks: a host may have switched meanwhile
            for mv in doomed:
                if mv.version in served:
                    report.kept.append(mv.version)
                    continue
                ledger.transition(model, mv.version, "retired", action="retire", actor=actor,
                                  reason=f"retention: keep the newest {keep} known-good versions",
                                  expect=("known-good",))
                retired.append(mv)
        # Delete bytes only after the states are committed: a crash in between leaves retired rows whose trees
        # are still there (deleted next time), never a live version without its artifact.
        live = {r[0] for r in db.query("SELECT tree FROM versions WHERE state != 'retired'")}
        for mv in retired:
            report.retired.append(mv.version)
            if mv.digest not in live:
                report.deleted_bytes += store.delete_tree(mv.digest)
                live.add(mv.digest)  # deleted once is enough when two retired versions share the bytes
    return report
