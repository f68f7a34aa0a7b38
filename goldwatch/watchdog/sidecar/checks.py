"""The checks the sidecar schedules. Each run is blocking (it runs in a worker thread) and returns
:class:`~goldwatch.checks.Check` s about the version that was served when it started.

* :class:`FilesCheck` -- the served files against the served version's manifest. By default each run compares
  XXH3 digests with a *baseline* taken when SHA-256 last verified the files against the manifest (both XXH3 passes
  around the SHA-256 one must agree, so the baseline is the verified bytes); a mismatch is then proven, and
  located to file, tensor and 1 MiB block, by :func:`~goldwatch.integrity.verify_artifact` against the manifest.
  A full SHA-256 run happens at start, after a rollback, every ``sha256_interval_s`` and on demand.
* :class:`GoldenCheck` -- :func:`~goldwatch.golden_sets.replay` of the served version's golden sets through the
  live endpoint (:class:`~goldwatch.runtimes.oip.OipRuntime` with ``probe=True``: each request marked as
  goldwatch's own), in requests of ``batch_size`` samples, held to the calibrated tolerances.
* :class:`ReadinessCheck` -- ``/v2/health/ready`` and the model's ready endpoint.
* :class:`VersionCheck` -- the versions the server reports for the model against what the registry serves.
* :class:`RollbackReadinessCheck` -- :meth:`~goldwatch.watchdog.registry.Registry.check`: a verified target exists.
* :class:`DeviceCheck` -- the device the server reports for the model (goldwatch's MLServer runtime says it in the
  model's metadata): a lost GPU fails it (disaster recovery, scenario 4).
* :class:`StandbyCheck` -- the model's alternates (the fallback, the CPU variant) still pass their golden sets
  through their own endpoints (:func:`verify_alternate`, which the sidecar also runs right before it routes traffic
  to one).

A check that cannot run (server unreachable, golden set unreadable, timeout) returns an ``error`` check, never a
``fail``: only evidence about the model fails.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx

from goldwatch._http import client as http_client
from goldwatch.checks import Check
from goldwatch.config import GoldenConfig, ServeFilesCheck, ServeGoldenCheck
from goldwatch.errors import GoldwatchError
from goldwatch.integrity import ArtifactManifest, file_digest, verify_artifact
from goldwatch.watchdog.sidecar.targets import Served, Target, split_model_url

__all__ = [
    "AlternateProof",
    "DeviceCheck",
    "FilesCheck",
    "GoldenCheck",
    "GoldenSetCache",
    "ReadinessCheck",
    "RollbackReadinessCheck",
    "RunRequest",
    "RunResult",
    "ScheduledCheck",
    "StandbyCheck",
    "VersionCheck",
    "replay_sets",
    "verify_alternate",
]

BASELINE_NAMESPACE = "files-baseline"


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """Why a run happens and how: ``full`` asks the files check for SHA-256 against the manifest now."""

    reason: str = "schedule"
    full: bool = False


@dataclasses.dataclass(frozen=True)
class RunResult:
    """The checks of one run, and the version served when it started (None: unknown or not from a registry)."""

    checks: tuple[Check, ...]
    version: str | None


class CheckpointStore(Protocol):
    def put_checkpoint(self, namespace: str, key: str, value: Any) -> None: ...
    def get_checkpoint(self, namespace: str, key: str) -> Any: ...


class ScheduledCheck(Protocol):
    """What the scheduler runs for one model: ``kind`` names the evidence kind (and the policy row)."""

    kind: str

    def run(self, target: Target, request: RunRequest) -> RunResult: ...


def _error(name: str, exc: BaseException, version: str | None) -> RunResult:
    text = str(exc) if isinstance(exc, GoldwatchError) else f"{type(exc).__name__}: {exc}"
    return RunResult((Check(name=name, status="error", summary=text),), version)


def _skip(name: str, why: str, version: str | None) -> RunResult:
    return RunResult((Check(name=name, status="skip", summary=why),), version)


# ---- files ---------------------------------------------------------------------------------------------------

def _actual_files(path: Path, manifest: ArtifactManifest) -> list[Path]:
    """Where each manifest entry is on disk (a file manifest names its first file whatever it is called now)."""
    if manifest.kind == "directory":
        return [path / f.path for f in manifest.files]
    return [path if i == 0 else path.parent / f.path for i, f in enumerate(manifest.files)]


def fast_manifest(path: Path, manifest: ArtifactManifest) -> ArtifactManifest:
    """The same files as ``manifest``, with XXH3 digests of what is on disk now (no tensor fingerprints)."""
    files = tuple(dataclasses.replace(entry, digest=file_digest(actual, "xxh3"), tensors=())
                  for entry, actual in zip(manifest.files, _actual_files(path, manifest)))
    return dataclasses.replace(manifest, digest="xxh3", files=files)


class FilesCheck:
    """Served files against the served version's manifest (see the module docstring)."""

    kind = "files"

    def __init__(self, config: ServeFilesCheck, *, checkpoints: CheckpointStore, model: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.checkpoints = checkpoints
        self.model = model
        self.clock = clock
        self._cached: tuple[tuple[str, int, int], ArtifactManifest] | None = None

    def run(self, target: Target, request: RunRequest) -> RunResult:
        served = target.served()
        if served.path is None or served.manifest is None:
            return _skip("integrity:files", served.note or "no local files to check", served.version)
        result = self._run(target, served, request)
        if result.checks and any(c.status == "fail" for c in result.checks):
            # another process (an operator, a CI job) may have switched the version while these files were read:
            # a mismatch is evidence only about files that were still the ones served
            now = target.served()
            if (now.version, now.path, now.manifest) != (served.version, served.path, served.manifest):
                return _skip("integrity:files", f"the served version changed while its files were checked "
                             f"({served.version} -> {now.version}): the next run checks the new one", served.version)
        return result

    def _run(self, target: Target, served: Served, request: RunRequest) -> RunResult:
        assert served.path is not None
        assert served.manifest is not None
        try:
            manifest = self._manifest(served.manifest)
            baseline = self._baseline(served, manifest)
            due = baseline is None or (self.config.sha256_interval_s > 0 and
                                       self.clock() - baseline[1] >= self.config.sha256_interval_s)
            if self.config.digest == "sha256" or request.full or due:
                return RunResult(tuple(self._full(served, manifest)), served.version)
            assert baseline is not None
            fast = verify_artifact(served.path, baseline[0], locate=False)
            if fast.ok:
                return RunResult(tuple(self._named(fast.to_checks(prefix="integrity"), "xxh3 baseline verified "
                                                   f"by sha256 {self.clock() - baseline[1]:.0f} s ago")),
                                 served.version)
            # the bytes changed since SHA-256 last verified them: prove it against the manifest, and say where
            return RunResult(tuple(self._full(served, manifest)), served.version)
        except GoldwatchError as exc:
            return _error("integrity:files", exc, served.version)
        except OSError as exc:
            return _error("integrity:files", exc, served.version)

    def _manifest(self, path: Path) -> ArtifactManifest:
        """The manifest, parsed once per version of the file (a registry's manifests never change)."""
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, ArtifactManifest.load(path))
        return self._cached[1]

    @staticmethod
    def _named(checks: list[Check], how: str) -> list[Check]:
        """Say how a pass was established; lead a failure with where it is (tensor and block) when known."""
        out = []
        for c in checks:
            if c.status == "pass":
                out.append(dataclasses.replace(c, summary=f"{c.summary} ({how})"))
                continue
            found = list(c.details.get("mismatches") or ())
            located = [m for m in found if m.get("kind") in ("block", "dtype", "shape", "missing", "unexpected",
                                                                "unreadable")]
            if located:
                first = located[0]["message"]
                more = f" (+{len(located) - 1} more)" if len(located) > 1 else ""
                out.append(dataclasses.replace(c, summary=f"{first}{more}; {how}: the digest differs"))
            else:
                out.append(c)
        return out

    def _full(self, served: Served, manifest: ArtifactManifest) -> list[Check]:
        assert served.path is not None
        before = fast_manifest(served.path, manifest)
        report = verify_artifact(served.path, manifest)
        checks = self._named(report.to_checks(prefix="integrity"), f"{manifest.digest} against the manifest")
        if report.ok and verify_artifact(served.path, before, locate=False).ok:
            # XXH3 before and after the SHA-256 pass agree: the baseline is the bytes SHA-256 verified
            self.checkpoints.put_checkpoint(BASELINE_NAMESPACE, self.model, {
                "version": served.version, "manifest": str(served.manifest), "path": str(served.path),
                "verified_at": self.clock(), "fast": before.to_dict(),
            })
        return checks

    def _baseline(self, served: Served, manifest: ArtifactManifest) -> tuple[ArtifactManifest, float] | None:
        saved = self.checkpoints.get_checkpoint(BASELINE_NAMESPACE, self.model)
        if not isinstance(saved, dict) or saved.get("version") != served.version or \
                saved.get("manifest") != str(served.manifest) or saved.get("path") != str(served.path):
            return None
        try:
            fast = ArtifactManifest.from_dict(saved["fast"], where="files baseline")
        except (GoldwatchError, KeyError, TypeError):
            return None
        if [f.path for f in fast.files] != [f.path for f in manifest.files]:
            return None
        return fast, float(saved.get("verified_at") or 0.0)


# ---- golden replay -------------------------------------------------------------------------------------------

class GoldenSetCache:
    """Golden sets loaded once each: by path and the manifest's size and mtime (a rebuilt set is reloaded). A set
    stored in the registry is re-hashed against its tree digest when first loaded: an edited one vouches for
    nothing."""

    def __init__(self) -> None:
        self._sets: dict[tuple[str, int, int], Any] = {}
        self._lock = threading.Lock()

    def load(self, path: Path) -> Any:
        from goldwatch.golden_sets import MANIFEST_NAME, GoldenSet
        from goldwatch.watchdog.registry.store import stored_tree_problem

        try:
            st = (Path(path) / MANIFEST_NAME).stat()
            key = (str(path), st.st_size, st.st_mtime_ns)
        except OSError:
            key = (str(path), -1, -1)
        with self._lock:
            if key in self._sets:
                return self._sets[key]
        problem = stored_tree_problem(Path(path))
        if problem:
            from goldwatch.errors import GoldenSetError

            raise GoldenSetError(f"the golden set cannot be trusted: {problem}", where=str(path),
                                 hint="add the version again with a fresh golden set")
        golden = GoldenSet.load(path)
        with self._lock:
            self._sets[key] = golden
        return golden


class GoldenCheck:
    """Golden replay of the served version's golden sets against the live endpoint (requests marked as probes)."""

    kind = "golden"

    def __init__(self, config: ServeGoldenCheck, golden: GoldenConfig, *, cache: GoldenSetCache) -> None:
        self.config = config
        self.golden = golden
        self.cache = cache
        self._client: tuple[str | None, Any] | None = None

    def run(self, target: Target, request: RunRequest) -> RunResult:
        served = target.served()
        if not served.golden:
            return _skip("golden:replay", "no golden set vouches for the served version (link one with "
                         "`goldwatch registry add --golden`, or set golden = [...] for this model)", served.version)
        try:
            sets = [self.cache.load(p) for p in served.golden]
        except GoldwatchError as exc:
            return _error("golden:replay", exc, served.version)
        try:
            runtime = self._runtime(target.watch.url, served.version)
        except GoldwatchError as exc:
            return _error("golden:replay", exc, served.version)
        ok = False
        try:
            checks = replay_sets(runtime, served.golden, sets, golden=self.golden, batch_size=self.config.batch_size)
            ok = True
        except GoldwatchError as exc:
            return _error("golden:replay", exc, served.version)
        finally:
            if not ok:  # connect afresh next time (metadata, readiness): the server may have changed
                self._drop()
        return RunResult(tuple(checks), served.version)

    def _runtime(self, url: str, version: str | None) -> Any:
        """One OIP client per model, kept between runs (one run in flight at a time) while the served version
        stays the same: its metadata and readiness were fetched once, and its connection stays open."""
        from goldwatch.runtimes.oip import OipRuntime

        if self._client is not None and self._client[0] == version:
            return self._client[1]
        self._drop()
        runtime = OipRuntime(url, timeout=self.config.timeout_s, probe=True)
        runtime.declared = runtime.signature  # type: ignore[attr-defined]
        self._client = (version, runtime)
        return runtime

    def _drop(self) -> None:
        if self._client is not None:
            self._client[1].close()
            self._client = None

    def close(self) -> None:
        self._drop()


def replay_sets(runtime: Any, paths: Sequence[Path], sets: Sequence[Any], *, golden: GoldenConfig,
                batch_size: int) -> list[Check]:
    """Replay each golden set through ``runtime`` (an OIP client) and return the checks, class ``golden``.

    Each set starts from what the server declares (replay adopts a golden set's signature where the server publishes
    none, and says so in a check). Raises what replay raises (unreachable server, a set that does not fit)."""
    from goldwatch.golden_sets import replay

    checks: list[Check] = []
    declared = getattr(runtime, "declared", runtime.signature)
    for path, golden_set in zip(paths, sets):
        runtime.signature = declared
        report = replay(runtime, golden_set, batch_size=batch_size, min_top1_agreement=golden.min_top1_agreement,
                        min_cosine=golden.min_cosine, drift_alpha=golden.drift_alpha or None)
        if len(sets) == 1:
            checks += report.checks
        else:  # several sets: name each check after its set, keeping the 'golden' class
            checks += [dataclasses.replace(c, name=f"golden:{Path(path).name}:{c.name.partition(':')[2]}")
                       for c in report.checks]
    return checks


# ---- the alternates (disaster recovery) ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class AlternateProof:
    """Whether an alternate (``fallback`` or ``cpu_variant``) answers its golden sets within tolerance now.

    ``ok`` is None when it could not be checked (unreachable, no golden set): never routed to either way."""

    alternate: str
    url: str
    ok: bool | None
    summary: str
    checks: tuple[Check, ...] = ()
    golden: tuple[str, ...] = ()
    duration_s: float = 0.0
    devices: tuple[str, ...] = ()  # where the golden sets' tolerances were calibrated

    def to_check(self) -> Check:
        status = "pass" if self.ok else ("fail" if self.ok is False else "error")
        failed = [c for c in self.checks if not c.ok]
        return Check(name=f"standby:{self.alternate}", status=status, summary=self.summary,  # type: ignore[arg-type]
                     measured={"checks_passed": sum(1 for c in self.checks if c.ok), "checks": len(self.checks)},
                     details={"url": self.url, "golden": list(self.golden), "calibrated_on": list(self.devices),
                              "failed": [{"name": c.name, "summary": c.summary} for c in failed[:10]]},
                     duration_s=self.duration_s)


def alternate_golden(target: Target, alternate: str) -> tuple[Path, ...]:
    """The golden sets that prove ``alternate``: its own; for the CPU variant without its own, the served
    version's (build those across devices: their tolerances then cover CPU against GPU)."""
    config = getattr(target.watch, alternate)
    if config is None:
        return ()
    if config.golden:
        return tuple(Path(p) for p in config.golden)
    return tuple(target.served().golden) if alternate == "cpu_variant" else ()


def verify_alternate(target: Target, alternate: str, *, golden: GoldenConfig, cache: GoldenSetCache,
                     ) -> AlternateProof:
    """Replay the alternate's golden sets through its own endpoint (requests marked as goldwatch's probes)."""
    from goldwatch.runtimes.oip import OipRuntime

    t0 = time.perf_counter()
    config = getattr(target.watch, alternate, None)
    if config is None:
        return AlternateProof(alternate, "", None, f"no {alternate} is configured")
    label = "the fallback" if alternate == "fallback" else "the CPU variant"
    try:
        paths = alternate_golden(target, alternate)
    except GoldwatchError as exc:
        return AlternateProof(alternate, config.url, None, f"{label}: the served version's golden sets cannot be "
                              f"read: {exc}", duration_s=time.perf_counter() - t0)
    names = tuple(str(p) for p in paths)
    if not paths:
        return AlternateProof(alternate, config.url, None, f"{label} has no golden set to prove it with: never "
                              "routed to", duration_s=time.perf_counter() - t0)
    try:
        sets = [cache.load(p) for p in paths]
        runtime = OipRuntime(config.url, timeout=config.timeout_s, probe=True)
        try:
            checks = replay_sets(runtime, paths, sets, golden=golden, batch_size=config.batch_size)
        finally:
            runtime.close()
    except GoldwatchError as exc:
        return AlternateProof(alternate, config.url, None, f"{label} could not be verified: {exc}", golden=names,
                              duration_s=time.perf_counter() - t0)
    took = time.perf_counter() - t0
    devices = tuple(sorted({str(d) for g in sets for tol in g.tolerances.values()
                            for d in (tol.derivation or {}).get("devices", ())}))
    bad = [c for c in checks if c.status == "fail"] or [c for c in checks if c.status == "error"]
    if bad:
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        verdict = "fails its golden set" if bad[0].status == "fail" else "could not be compared with its golden set"
        return AlternateProof(alternate, config.url, False if bad[0].status == "fail" else None,
                              f"{label} {verdict}: {bad[0].name}: {bad[0].summary}{more}", tuple(checks), names, took,
                              devices)
    where = ""
    if alternate == "cpu_variant" and devices:
        where = (f"; tolerances calibrated on {' and '.join(devices)}" if len(devices) > 1 else
                 f"; tolerances calibrated on {devices[0]} only (the CPU/GPU difference was not measured)")
    return AlternateProof(alternate, config.url, True, f"{label} passes {len(checks)} golden check(s) of "
                          f"{len(paths)} set(s) in {took:.2f} s{where}", tuple(checks), names, took, devices)


class StandbyCheck:
    """The alternates still pass their golden sets (one check each): is the degradation path there when needed?"""

    kind = "standby"

    def __init__(self, golden: GoldenConfig, *, cache: GoldenSetCache) -> None:
        self.golden = golden
        self.cache = cache

    def run(self, target: Target, request: RunRequest) -> RunResult:
        checks = tuple(verify_alternate(target, name, golden=self.golden, cache=self.cache).to_check()
                       for name in ("fallback", "cpu_variant") if getattr(target.watch, name) is not None)
        return RunResult(checks or (Check("standby:none", "skip", "no fallback or CPU variant is configured"),),
                         None)


# ---- the server ----------------------------------------------------------------------------------------------

class _ServerProbe:
    def __init__(self, target: Target, timeout_s: float) -> None:
        self.base, self.path, self.server_name = split_model_url(target.watch.url)
        # loopback (the server in the sidecar's own pod) never through a proxy from the environment
        self.client = http_client(base_url=self.base, timeout=timeout_s)

    def get(self, path: str) -> tuple[int | None, Any, str]:
        """(status or None, JSON body or None, what happened in words)."""
        try:
            resp = self.client.get(path)
        except httpx.HTTPError as exc:
            return None, None, f"cannot connect ({type(exc).__name__}: {exc})"
        try:
            body = resp.json()
        except ValueError:
            body = None
        return resp.status_code, body, f"HTTP {resp.status_code}"


class ReadinessCheck:
    """``GET /v2/health/ready`` and ``GET /v2/models/NAME[/versions/V]/ready``: 200 is ready."""

    kind = "readiness"

    def __init__(self, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._probes: dict[str, _ServerProbe] = {}

    def _probe(self, target: Target) -> _ServerProbe:
        probe = self._probes.get(target.name)
        if probe is None:
            probe = self._probes[target.name] = _ServerProbe(target, self.timeout_s)
        return probe

    def run(self, target: Target, request: RunRequest) -> RunResult:
        probe = self._probe(target)
        checks = []
        for name, path in (("server:ready", "/v2/health/ready"), ("server:model-ready", probe.path + "/ready")):
            t0 = time.perf_counter()
            status, _body, what = probe.get(path)
            ok = status == 200
            checks.append(Check(name=name, status="pass" if ok else "fail",
                                summary=f"{probe.base}{path}: {what}" + ("" if ok else " (not ready)"),
                                measured={"http_status": status}, threshold={"http_status": 200},
                                duration_s=time.perf_counter() - t0))
        return RunResult(tuple(checks), None)

    def close(self) -> None:
        for probe in self._probes.values():
            probe.client.close()


class VersionCheck:
    """The versions the server reports in the model's metadata against the one the registry serves."""

    kind = "version"

    def __init__(self, *, timeout_s: float) -> None:
        self._readiness = ReadinessCheck(timeout_s=timeout_s)

    def run(self, target: Target, request: RunRequest) -> RunResult:
        served = target.served()
        if served.server_version is None:
            return _skip("version:served", served.note or "no registry version to compare with", served.version)
        probe = self._readiness._probe(target)
        status, body, what = probe.get(probe.path)
        if status != 200 or not isinstance(body, dict):
            return RunResult((Check(name="version:served", status="error",
                                    summary=f"model metadata: {what}"),), served.version)
        reported = [str(v) for v in (body.get("versions") or [])]
        if not reported:
            return _skip("version:served", "the server reports no version for this model", served.version)
        ok = served.server_version in reported
        summary = (f"the server serves {served.server_version}" if ok else
                   f"the server reports version(s) {', '.join(reported)}, the registry serves "
                   f"{served.server_version}")
        return RunResult((Check(name="version:served", status="pass" if ok else "fail", summary=summary,
                                measured={"reported": ",".join(reported)},
                                threshold={"expected": served.server_version}),), served.version)

    def close(self) -> None:
        self._readiness.close()


DEVICE_PARAMETER = "goldwatch_device"


class DeviceCheck:
    """The device the server reports for the model in its metadata ``parameters`` (goldwatch's MLServer runtime:
    ``goldwatch_device``, ``goldwatch_device_ok``, ``goldwatch_device_error``): a device reported lost fails.
    A server that reports no device is skipped (say so): its GPU loss shows as errors and readiness instead."""

    kind = "device"

    def __init__(self, *, timeout_s: float) -> None:
        self._readiness = ReadinessCheck(timeout_s=timeout_s)

    def run(self, target: Target, request: RunRequest) -> RunResult:
        probe = self._readiness._probe(target)
        t0 = time.perf_counter()
        status, body, what = probe.get(probe.path)
        took = time.perf_counter() - t0
        if status != 200 or not isinstance(body, dict):
            return RunResult((Check(name="device:available", status="error", summary=f"model metadata: {what}",
                                    duration_s=took),), None)
        found = body.get("parameters")
        params: dict[str, Any] = found if isinstance(found, dict) else {}
        device = params.get(DEVICE_PARAMETER)
        if not isinstance(device, str):
            return _skip("device:available", "the server does not report the model's device (goldwatch's MLServer "
                         "runtime does: goldwatch.watchdog.agent.mlserver.GoldwatchModel)", None)
        ok = params.get("goldwatch_device_ok") is True
        error = str(params.get("goldwatch_device_error") or "")
        summary = f"{device} available" if ok else f"{device} LOST: {error or 'the server reports it unusable'}"
        return RunResult((Check(name="device:available", status="pass" if ok else "fail", summary=summary,
                                measured={"device": device, "available": ok}, threshold={"available": True},
                                details={"error": error} if error else {}, duration_s=took),), None)

    def close(self) -> None:
        self._readiness.close()


class RollbackReadinessCheck:
    """Whether a verified rollback target exists now (reported, never acted on)."""

    kind = "rollback_readiness"

    def run(self, target: Target, request: RunRequest) -> RunResult:
        served_version = None
        try:
            served_version = target.served().version
            return RunResult(tuple(target.rollback_readiness()), served_version)
        except GoldwatchError as exc:
            return _error("registry:target", exc, served_version)


def rollback_ready(checks: Sequence[Check]) -> bool | None:
    """From a rollback-readiness run: is a verified target there (None: not applicable)?"""
    target = [c for c in checks if c.name.endswith(":target")]
    if not target or target[0].status == "skip":
        return None
    return target[0].status == "pass"

