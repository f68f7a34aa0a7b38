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

from typing import TYPE_CHECKING

from goldwatch.errors import RegistryError
from goldwatch.watchdog.registry import db as _db
from goldwatch.watchdog.registry.models import RetentionReport

if TYPE_CHECKING:
    from goldwatch.watchdog.registry.core import Registry

__all__ = ["apply_retention"]


def apply_retention(reg: Registry, model: str, *, keep: int, actor: str) -> RetentionReport:
    """The body of :meth:`Registry.apply_retention` (call that instead)."""
    if not isinstance(keep, int) or keep < 1:
        raise RegistryError(f"keep must be a whole number >= 1, got {keep!r}", where="registry.keep_known_good",
                            hint="keep at least one known-good version, or there is nothing to roll back to")
    reg._require_model(model)
    report = RetentionReport(model=model)
    with reg._locked():
        served = reg.serving_target(model)
        current = served[0] if served else None
        newest_first = list(reversed(reg.list(model, state="known-good")))
        last_verified = next((mv.version for mv in newest_first if reg.verify(mv).ok), None)
        doomed = []
        for i, mv in enumerate(newest_first):
            if i < keep or mv.version in (current, last_verified):
                report.kept.append(mv.version)
            else:
                doomed.append(mv)
        # Trees no version row names: left by an `add` that crashed between storing and registering.
        named = {r[0] for r in reg._conn.execute("SELECT tree FROM versions")}
        if reg.store.trees.is_dir():
            for tree in reg.store.trees.iterdir():
                if tree.name not in named:
                    report.deleted_bytes += reg.store.delete_tree(tree.name)
        if not doomed:
            return report
        with _db.write(reg._conn):
            for mv in doomed:
                reg._transition(mv, "retired", action="retire", actor=actor,
                                reason=f"retention: keep the newest {keep} known-good versions", evidence=None)
        # Delete bytes only after the states are committed: a crash in between leaves retired rows whose trees
        # are still there (deleted next time), never a live version without its artifact.
        live = {
            r[0] for r in reg._conn.execute("SELECT tree FROM versions WHERE state != 'retired'")
        }
        for mv in doomed:
            report.retired.append(mv.version)
            if mv.digest not in live:
                report.deleted_bytes += reg.store.delete_tree(mv.digest)
                live.add(mv.digest)  # deleted once is enough when two retired versions share the bytes
    return report
