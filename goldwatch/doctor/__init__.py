"""``goldwatch doctor``: what goldwatch can do on this machine, and why not.

One pass over everything a command could trip on later: goldwatch's version and each optional extra, the CPU,
CUDA devices and the Triton fingerprint kernel, ONNX Runtime's providers, MLServer, Chromium, the config file, the
registry, the alert path, the sidecar, live drift's references, and the disaster-recovery setup
(degradation paths, training assets' backups against their RPO, the drill target). Each finding is a
:class:`~goldwatch.checks.Check`:

* ``pass`` -- available and working
* ``skip`` -- not available here (an extra not installed, no GPU, nothing configured): the summary says what that
  rules out and how to get it; never a problem by itself
* ``fail`` -- something configured or present is broken (an invalid config, a registry that cannot be written, a
  routing key file that cannot be read, a sidecar that does not answer)
* ``error`` -- the check itself crashed (a bug: the summary says so)

Nothing is changed and nothing is sent: no registry or outbox is created, no alert leaves the machine.

>>> report = diagnose(None, only=("goldwatch", "cpu"))
>>> [c.name for c in report.checks], report.ok
(['goldwatch', 'python', 'cpu'], True)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable

from goldwatch.checks import Check, CheckReport
from goldwatch.config import GoldwatchConfig
from goldwatch.doctor import hardware, recovery, setup, software

__all__ = ["SECTIONS", "DoctorReport", "diagnose"]

# section name -> the checks it runs, in the order they are shown
SECTIONS: dict[str, Callable[[GoldwatchConfig], list[Check]]] = {
    "goldwatch": lambda _cfg: software.goldwatch_itself(),
    "extras": lambda _cfg: software.extras(),
    "cpu": lambda _cfg: hardware.cpu(),
    "cuda": lambda _cfg: hardware.cuda(),
    "triton": lambda _cfg: hardware.triton_kernel(),
    "onnxruntime": lambda _cfg: hardware.onnxruntime_providers(),
    "mlserver": lambda _cfg: software.mlserver(),
    "chromium": lambda _cfg: software.chromium(),
    "registry": setup.registry,
    "alerts": setup.alerts,
    "sidecar": setup.sidecar,
    "live_drift": setup.live_drift,
    "recovery": recovery.recovery,
}


@dataclasses.dataclass(frozen=True)
class DoctorReport:
    """Every finding, in order; ``ok`` when nothing failed (skips are fine)."""

    checks: tuple[Check, ...]
    duration_s: float

    @property
    def ok(self) -> bool:
        return CheckReport(list(self.checks)).ok

    def counts(self) -> dict[str, int]:
        return CheckReport(list(self.checks)).counts()


def diagnose(config_path: str | None, *, only: Iterable[str] | None = None) -> DoctorReport:
    """Run the doctor's checks (all, or the sections named in ``only``) with the config at ``config_path``."""
    started = time.perf_counter()
    wanted = list(SECTIONS) if only is None else list(only)
    unknown = [name for name in wanted if name not in SECTIONS and name != "config"]
    if unknown:
        raise ValueError(f"unknown doctor section(s) {unknown}; known: config, {', '.join(SECTIONS)}")
    config_check, cfg = setup.config(config_path)
    checks: list[Check] = []
    for name, run in SECTIONS.items():
        if name not in wanted:
            continue
        if name == "registry" and (only is None or "config" in wanted):
            checks.append(config_check)  # the config comes right before what it configures
        t0 = time.perf_counter()
        try:
            found = run(cfg)
        except Exception as exc:  # one broken probe must not hide the others
            found = [Check(name=name, status="error",
                           summary=f"the check crashed: {type(exc).__name__}: {exc} (a bug in goldwatch doctor; "
                                   "rerun with --log-level debug and report it)")]
        elapsed = time.perf_counter() - t0
        checks += [c if c.duration_s is not None else dataclasses.replace(c, duration_s=round(elapsed, 4))
                   for c in found]
    if "config" in wanted and not any(c.name == "config" for c in checks):
        checks.append(config_check)
    return DoctorReport(checks=tuple(checks), duration_s=time.perf_counter() - started)
