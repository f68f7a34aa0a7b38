"""The doctor's disaster-recovery findings: is each degradation path, training asset and drill target usable as
configured, before the day it is needed. Nothing is contacted, restored or changed: a route hook is not called, an
alternate not replayed (the sidecar's ``standby`` check does that), a backup not restored (``goldwatch asset
verify`` does that).

>>> from goldwatch.config import GoldwatchConfig
>>> [(c.name, c.status) for c in recovery(GoldwatchConfig())]
[('recovery', 'skip')]
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from goldwatch.checks import Check, Status
from goldwatch.config import AssetConfig, GoldwatchConfig, ServeWatchConfig
from goldwatch.doctor.setup import _directory
from goldwatch.golden_sets.format import MANIFEST_NAME

__all__ = ["recovery"]


def recovery(cfg: GoldwatchConfig) -> list[Check]:
    """One finding per watched model (its degradation path), per training asset (its backups against its RPO), the
    restore scratch folder, and the drill target."""
    checks = [_degradation(w) for w in cfg.serve.watch]
    if cfg.recovery.assets:
        scratch = Path(cfg.recovery.scratch or Path(cfg.registry.root) / "restore-scratch")
        found = _directory("recovery:scratch", scratch, purpose="backups are restored there to be verified",
                           created_by="the first restore-and-verify")
        checks += [found, *(_asset(a, now=time.time()) for a in cfg.recovery.assets)]
    if cfg.drill.drill_target:
        checks.append(_drill(cfg))
    if not checks:
        return [Check(name="recovery", status="skip",
                      summary="nothing to recover: no watched model ([[serve.watch]]) and no training asset "
                              "([[recovery.assets]]); docs/recovery.md says how to add them")]
    return checks


def _degradation(w: ServeWatchConfig) -> Check:
    name = f"recovery:{w.name}"
    alternates = [(label, alt) for label, alt in (("fallback", w.fallback), ("CPU variant", w.cpu_variant))
                  if alt is not None]
    if not alternates:
        return Check(name=name, status="skip",
                     summary=f"{w.name} has no degradation path: a lost server, a lost GPU, or no known-good version "
                             "left is paged, and traffic stays on the primary (add [serve.watch.fallback] or "
                             "[serve.watch.cpu_variant] with [serve.watch.route])")
    problems: list[str] = []
    parts: list[str] = []
    for label, alt in alternates:
        missing = [str(g) for g in alt.golden if not (Path(g) / MANIFEST_NAME).is_file()]
        if missing:
            problems.append(f"the {label}'s golden set(s) {', '.join(missing)} are missing (no {MANIFEST_NAME}): it "
                            "can never be proven, so traffic never goes to it")
        proof = f"{len(alt.golden)} golden set(s)" if alt.golden else "the served version's golden sets"
        parts.append(f"{label} {alt.url} ({proof})")
    route = w.route
    how = ""
    if route is not None and route.kind == "command" and route.command:
        exe = route.command[0]
        found = shutil.which(exe) if os.sep not in exe else (exe if os.access(exe, os.X_OK) else None)
        if found is None:
            problems.append(f"the route command {exe} is not an executable here: traffic cannot be moved")
        how = f"command {exe}"
    elif route is not None:
        how = f"POST {route.url}"
    status: Status = "fail" if problems else "pass"
    summary = "; ".join(problems) if problems else (
        f"{w.name} degrades to: {', '.join(parts)}; traffic moved by {how} (not called here; the sidecar's standby "
        "check replays the alternates on a schedule)")
    return Check(name=name, status=status, summary=summary,
                 details={"alternates": [label for label, _ in alternates], "route": how})


def _asset(a: AssetConfig, *, now: float) -> Check:
    from goldwatch.watchdog.recovery.assets import list_backups

    name = f"asset:{a.name}"
    if not Path(a.path).exists():
        return Check(name=name, status="fail", summary=f"the live {a.kind} {a.path} does not exist",
                     details={"path": str(a.path)})
    if a.manifest is not None and not Path(a.manifest).is_file():
        return Check(name=name, status="fail",
                     summary=f"its manifest {a.manifest} does not exist: run `goldwatch asset register {a.name}`",
                     details={"manifest": str(a.manifest)})
    place = _directory(name, Path(a.backups), purpose="`goldwatch asset backup` writes snapshots there",
                       created_by="the first `goldwatch asset backup`")
    if not place.ok:
        return place
    backups, broken = list_backups(a) if Path(a.backups).is_dir() else ([], [])
    details = {"snapshots": len(backups), "broken": [b.snapshot for b in broken], "rpo_target_s": a.rpo_seconds}
    unreadable = f"; {len(broken)} snapshot(s) with unreadable metadata ({broken[0].snapshot})" if broken else ""
    if not backups:
        return Check(name=name, status="fail",
                     summary=f"no backup of {a.name}: the training RPO is unbounded (`goldwatch asset backup "
                             f"{a.name}`){unreadable}", details=details)
    age = now - backups[0].taken_at
    details["newest_age_s"] = round(age, 3)
    if age > a.rpo_seconds:
        return Check(name=name, status="fail",
                     summary=f"the newest snapshot ({backups[0].snapshot}) is {age:.0f} s old, past the RPO of "
                             f"{a.rpo_seconds:g} s even before it is verified{unreadable}", details=details)
    return Check(name=name, status="fail" if broken else "pass",
                 summary=f"{len(backups)} snapshot(s), the newest {age:.0f} s old (RPO {a.rpo_seconds:g} s; not "
                         f"restored here: `goldwatch asset verify {a.name}` restores and verifies){unreadable}",
                 details=details)


def _drill(cfg: GoldwatchConfig) -> Check:
    d = cfg.drill
    if not d.stack:
        return Check(name="drill", status="fail",
                     summary="[drill] drill_target = true but no stack name: set [drill] stack = NAME (goldwatch "
                             "drill --stack NAME must repeat it)")
    model = next((w for w in cfg.serve.watch if w.name == (d.model or cfg.serve.watch[0].name)), None) \
        if cfg.serve.watch else None
    skipped = []
    if not (d.stop_command and d.start_command):
        skipped.append("1 (no stop_command/start_command)")
    if model is None or model.fallback is None:
        skipped.append("3b (no fallback)")
    if model is None or model.cpu_variant is None:
        skipped.append("4 (no cpu_variant)")
    if not cfg.recovery.assets:
        skipped.append("5 (no asset)")
    return Check(name="drill", status="pass",
                 summary=f"stack {d.stack!r} is a drill target: `goldwatch drill all --stack {d.stack}` injects "
                         "faults here" + (f"; scenarios skipped as configured: {', '.join(skipped)}" if skipped
                                          else "; every scenario can run"),
                 details={"stack": d.stack, "skipped": skipped})
