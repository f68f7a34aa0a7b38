"""Verified rollback and rollback readiness.

Rollback picks the newest known-good version other than the one being served whose artifact re-verifies against
its manifest (and, with ``golden=True``, whose linked golden sets replay within tolerance); a known-good version
that fails is quarantined on the spot and reported (a corrupted backup is worse than none: it would be served).
It then switches the pointer under the intent journal, re-checks what is served,
tells the server to reload and waits until it is ready, timing each phase. With no verified known-good version it
serves the configured fallback, or reports that there is none and changes nothing.

>>> import tempfile, pathlib
>>> from goldwatch.watchdog.registry import Registry, Serving, make_pointer
>>> with tempfile.TemporaryDirectory() as d:
...     reg = Registry.open(pathlib.Path(d, "reg"))
...     reg.attach("m", Serving(make_pointer("current-link", pathlib.Path(d, "serve"))))
...     for i in (1, 2):
...         p = pathlib.Path(d, f"w{i}.bin"); _ = p.write_bytes(bytes([i]) * 8)
...         _ = reg.promote("m", reg.add("m", p).version, reason="approved")
...     result = reg.rollback("m", reason="v2 answers wrong")
...     states = [(v.version, v.state, v.serving) for v in reg.list("m")]
...     reg.close()
>>> result.from_version, result.to_version, result.ok, sorted(result.phases)
('2', '1', True, ['select', 'switch', 'verify_after'])
>>> states
[('1', 'known-good', True), ('2', 'quarantined', False)]
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from goldwatch.checks import Check, Status
from goldwatch.errors import ConcurrentChangeError, GoldwatchError, RegistryError
from goldwatch.logs import get_logger
from goldwatch.watchdog.registry import journal
from goldwatch.watchdog.registry._integrity_adapter import Verification, verify
from goldwatch.watchdog.registry.ledger import Ledger
from goldwatch.watchdog.registry.models import (
    NO_RELOAD_WARNING,
    ModelVersion,
    ReadinessReport,
    RollbackResult,
    SkippedVersion,
)
from goldwatch.watchdog.registry.serving import Serving, pointer_lock
from goldwatch.watchdog.registry.store import stored_tree_problem
from goldwatch.watchdog.registry.switching import switch_and_commit

__all__ = ["ATTEMPTS", "readiness", "replay_golden_sets", "run_rollback"]

log = get_logger(__name__)

# How often a rollback re-decides when other hosts changed the model between its decision and its commit. Each
# retry re-reads the model (artifacts verified once per rollback are not re-hashed), so retries are cheap; a
# conflict still there after this many raises ConcurrentChangeError with nothing changed.
ATTEMPTS = 8


def replay_golden_sets(mv: ModelVersion) -> tuple[bool | None, str]:
    """Replay every golden set linked to ``mv`` through its artifact on CPU.

    Returns (True, summary) when all pass, (False, why) when an answer is outside tolerance (proof the model is
    wrong), and (None, why) when the replay could not run (the model does not load, a golden set is unreadable).
    """
    if not mv.golden:
        return True, "no golden set linked"
    from goldwatch.golden_sets import replay

    for golden in mv.golden:
        # the approved answers and tolerances must be the ones stored: an edited golden set proves nothing
        problem = stored_tree_problem(Path(golden))
        if problem:
            return None, f"golden set {golden} cannot be trusted: {problem}"
        try:
            report = replay(mv.path, golden)
        except Exception as exc:  # a runtime's own error types vary; any of them means "could not replay"
            return None, f"golden replay of {golden} could not run: {exc}"
        if not report.ok:
            failed = [c for c in report.checks if not c.ok]
            detail = "; ".join(f"{c.name}: {c.summary}" for c in failed[:3])
            return False, f"golden replay of {golden} failed: {detail}"
    return True, f"{len(mv.golden)} golden set(s) replayed within tolerance"


def _select(ledger: Ledger, model: str, current: str | None, *, actor: str, golden: bool, result: RollbackResult,
            checked: dict[str, Verification]) -> ModelVersion | None:
    """The newest known-good version (not ``current``) that re-verifies; quarantines the ones that fail."""
    for mv in reversed(ledger.list(model, state="known-good")):
        if mv.version == current:
            continue
        check = checked.get(mv.version) or checked.setdefault(mv.version, verify(mv.path, mv.manifest_path))
        if not check.ok:
            why = "artifact failed verification: " + "; ".join(check.problems[:5])
            evidence: dict[str, Any] = {"problems": check.problems[:50]}
        elif golden:
            passed, why = replay_golden_sets(mv)
            if passed:
                return mv
            if passed is None:
                # Not proof the model is wrong (it may be this host): skip it, but do not quarantine it.
                result.skipped.append(SkippedVersion(version=mv.version, reason=why, quarantined=False))
                continue
            evidence = {"golden": list(mv.golden)}
        else:
            return mv
        # expect known-good: if another host quarantined it meanwhile, that is the same conclusion (no change).
        ledger.transition(model, mv.version, "quarantined", action="quarantine", actor=actor,
                                     reason=f"rollback target rejected: {why}", evidence=evidence,
                                     expect=("known-good",))
        result.skipped.append(SkippedVersion(version=mv.version, reason=why, quarantined=True))
    return None


def run_rollback(ledger: Ledger, model: str, serving: Serving | None, *, actor: str, reason: str,
                 evidence: dict[str, Any] | None, quarantine_current: bool, golden: bool = False) -> RollbackResult:
    """The body of :meth:`Registry.rollback` (call that instead)."""
    if not reason:
        raise RegistryError("a reason is required", where="--reason", hint="say why, for the audit trail")
    ledger.require_model(model)
    if serving is None and ledger.serving_target(model) is None:
        # Nothing is served and nothing can be switched: "rolling back" would only relabel versions.
        raise RegistryError(
            f"{model!r} has no serving pointer, so there is nothing to roll back",
            where=str(ledger.store.root.parent),
            hint="pass --serving-dir DIR (or set registry.serving_dir / registry.layout), or attach a Serving",
        )
    checked: dict[str, Verification] = {}
    with pointer_lock(serving.pointer if serving else None), ledger.db.lock("store", shared=True):
        for attempt in range(1, ATTEMPTS + 1):
            try:
                result, source, target = _decide_and_switch(ledger, model, serving, actor=actor, reason=reason,
                                                            evidence=evidence, quarantine_current=quarantine_current,
                                                            golden=golden, checked=checked)
                break
            except ConcurrentChangeError:
                if attempt == ATTEMPTS:
                    raise
                log.info("%s changed underneath the rollback on %s; deciding again (%d/%d)", model, ledger.host,
                         attempt, ATTEMPTS)
                time.sleep(random.uniform(0, 0.005 * attempt))  # spread the retries of hosts that collided
    if serving is None or not result.switched:
        return result
    t0 = time.perf_counter()
    _verify_after(serving.pointer, source, target, result)
    result.phases["verify_after"] = time.perf_counter() - t0
    if serving.reloader is None:
        result.warnings.append(NO_RELOAD_WARNING)
    elif result.error is None:
        try:
            t0 = time.perf_counter()
            serving.reloader.reload(model=model, version=result.to_version, path=source)
            result.phases["reload"] = time.perf_counter() - t0
            journal.crash_point("rollback:reloaded")
            t0 = time.perf_counter()
            serving.reloader.wait_ready(timeout_s=serving.ready_timeout_s)
            result.phases["ready"] = time.perf_counter() - t0
            result.server_ready = True
        except GoldwatchError as exc:
            result.server_ready = False
            result.error = f"the server did not confirm the reload: {exc}"
    return result


def _decide_and_switch(ledger: Ledger, model: str, serving: Serving | None, *, actor: str, reason: str,
                       evidence: dict[str, Any] | None, quarantine_current: bool, golden: bool,
                       checked: dict[str, Verification]) -> tuple[RollbackResult, Path, ModelVersion | None]:
    """One attempt: decide (select the target) on a snapshot of the model, then switch if nobody changed it."""
    served = ledger.serving_target(model)
    current = served[0] if served else None
    result = RollbackResult(model=model, from_version=current, to_version=None)
    t0 = time.perf_counter()
    target = _select(ledger, model, current, actor=actor, golden=golden, result=result, checked=checked)
    result.phases["select"] = time.perf_counter() - t0
    journal.crash_point("rollback:selected")
    if target is None:
        if serving is None or serving.fallback is None:
            result.error = "no verified known-good version to roll back to, and no fallback model configured"
            result.no_target = True
            return result, Path(), None
        source = Path(serving.fallback)
        if not source.exists():
            result.error = f"no verified known-good version, and the fallback model {source} does not exist"
            return result, source, None
        result.fallback = source
    else:
        source = target.path
        result.to_version = target.version
    transitions = []
    if quarantine_current and current is not None and ledger.get(model, current).state in ("candidate",
                                                                                          "known-good"):
        transitions.append([current, "quarantined"])
    payload = {
        "actor": actor, "reason": reason, "action": "rollback",
        "evidence": {**(evidence or {}), "from": current, "to": result.to_version,
                     "fallback": str(result.fallback) if result.fallback else None,
                     "skipped": [s.version for s in result.skipped]},
        "transitions": transitions, "serve": True, "version": result.to_version,
        "source": str(source.resolve()), "pointer": serving.pointer.spec() if serving else None,
    }
    def precheck() -> None:
        # Snapshot isolation with the write-skew checks: the rows this rollback writes, and the target it read,
        # must still be as it saw them. A version promoted meanwhile does not invalidate it (the rollback simply
        # happened first); a target quarantined meanwhile, or a current version retired, does: decide again.
        # Rows to change are locked for the update, the target only against updates (so the many hosts of a
        # fleet rolling back to it after the first one quarantined the bad version go on side by side), all in
        # one order.
        writes = {v: True for v, to in transitions
                  if not _done(ledger.lock_version(model, v, write=None)["state"], to)}
        if target is not None:
            writes.setdefault(target.version, False)
        states = ledger.lock_versions(model, writes)
        for version in (v for v, write in writes.items() if write):
            if states[version] not in ("candidate", "known-good"):
                raise ledger.changed_underneath(model, version, found=states[version],
                                                expected=("candidate", "known-good"))
        if target is not None and states[target.version] != "known-good":
            raise ledger.changed_underneath(model, target.version, found=states[target.version],
                                            expected=("known-good",))
        if ledger.serving_target(model) != served:
            raise ConcurrentChangeError(f"what {ledger.host} serves of {model} changed underneath this rollback",
                                        where=model, hint="nothing was changed by this rollback; it decides again")

    t0 = time.perf_counter()
    switch_and_commit(ledger, "rollback", model, payload, serving.pointer if serving else None, source,
                      f"{model}:{result.to_version or 'fallback'}", precheck=precheck)
    result.phases["switch"] = time.perf_counter() - t0
    return result, source, target


def _done(state: str, to: str) -> bool:
    return state == to or (to == "quarantined" and state == "retired")


def _verify_after(pointer: Any, source: Path, target: ModelVersion | None, result: RollbackResult) -> None:
    """Re-check what the server will read after the switch."""
    state = pointer.read()
    if state is None or Path(state.source) != source.resolve():
        result.error = f"after the switch the pointer serves {state.source if state else 'nothing'}, not {source}"
        return
    if pointer.layout in ("numbered", "current-link") and target is not None:
        # Both layouts serve a copy of the store's bytes: verify the copy the server will read.
        served = pointer.served_path()
        if pointer.layout == "current-link":
            served = Path(os.path.realpath(served))  # the copy under its own name (a file manifest names it)
        elif target.path.is_file():
            served = served / target.path.name
        check = verify(served, target.manifest_path)
        if not check.ok:
            result.error = "the served copy fails verification: " + "; ".join(check.problems[:5])


def readiness(ledger: Ledger, model: str, serving: Serving | None, *, load: bool = False,
              golden: bool = False) -> ReadinessReport:
    """Can ``model`` be rolled back now? Target exists, its digests match, the pointer agrees; optionally it
    loads and answers its golden sets within tolerance."""
    ledger.require_model(model)
    served = ledger.serving_target(model)
    current = served[0] if served else None
    report = ReadinessReport(model=model, target=None)
    prefix = f"registry:{model}"
    target: ModelVersion | None = None
    for mv in reversed(ledger.list(model, state="known-good")):
        if mv.version == current:
            continue
        t0 = time.perf_counter()
        check = verify(mv.path, mv.manifest_path)
        took = time.perf_counter() - t0
        if check.ok:
            target = mv
            report.checks.append(Check(name=f"{prefix}:target-digest", status="pass",
                                       summary=f"{mv.version}: bytes match the manifest",
                                       measured={"version": mv.version}, duration_s=took))
            if golden:
                t0 = time.perf_counter()
                passed, why = replay_golden_sets(mv)
                status: Status = "pass" if passed else ("fail" if passed is False else "error")
                report.checks.append(Check(name=f"{prefix}:target-golden", status=status,
                                           summary=f"{mv.version}: {why}", duration_s=time.perf_counter() - t0))
            break
        report.checks.append(Check(name=f"{prefix}:backup:{mv.version}", status="fail",
                                   summary=f"known-good {mv.version} is corrupted: " + "; ".join(check.problems[:3]),
                                   details={"problems": check.problems[:50]}, duration_s=took))
    fallback = serving.fallback if serving else None
    if target is not None:
        report.target = target.version
        report.checks.insert(0, Check(name=f"{prefix}:target", status="pass",
                                      summary=f"rollback target: {target.version}"))
    elif fallback is not None and Path(fallback).exists():
        report.checks.insert(0, Check(name=f"{prefix}:target", status="pass",
                                      summary=f"no verified known-good version; fallback {fallback} exists"))
    else:
        report.checks.insert(0, Check(name=f"{prefix}:target", status="fail",
                                      summary="no verified known-good version to roll back to"
                                      + (" and no fallback model" if fallback is None else
                                         f"; fallback {fallback} is missing")))
    if serving is not None and served is not None:
        state = serving.pointer.read()
        agrees = state is not None and str(Path(state.source)) == served[1]
        report.checks.append(Check(
            name=f"{prefix}:pointer", status="pass" if agrees else "fail",
            summary=(f"pointer serves {served[0] or 'fallback'}" if agrees else
                     f"pointer serves {state.source if state else 'nothing'}, registry says {served[1]}"),
        ))
    if load:
        report.checks.append(_load_check(prefix, target))
    return report


def _load_check(prefix: str, target: ModelVersion | None) -> Check:
    name = f"{prefix}:target-loads"
    if target is None:
        return Check(name=name, status="skip", summary="no target to load")
    try:
        from goldwatch.runtimes import load_model
    except ImportError:
        return Check(name=name, status="skip", summary="goldwatch.runtimes.load_model is not available")
    t0 = time.perf_counter()
    try:
        runtime = load_model(target.path)
        runtime.close()
    except Exception as exc:  # any runtime failure means "does not load"; the message says which
        return Check(name=name, status="fail", summary=f"{target.version} does not load: {exc}",
                     duration_s=time.perf_counter() - t0)
    return Check(name=name, status="pass", summary=f"{target.version} loads", duration_s=time.perf_counter() - t0)
