"""The resident-weights agent: a background thread in the serving process that fingerprints the module's tensors
where they live and compares them with the manifest block by block.

>>> import tempfile, pathlib, torch
>>> from safetensors.torch import save_file
>>> from goldwatch.integrity import build_manifest
>>> from goldwatch.watchdog.agent import CallbackReporter
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> torch.manual_seed(0) and None
>>> model = torch.nn.Linear(512, 1024)                       # a 2 MiB weight: blocks 0 and 1
>>> save_file(dict(model.state_dict()), str(d / "weights.safetensors"))
>>> manifest = build_manifest(d)
>>> seen = []
>>> agent = watch(model, manifest=manifest, artifact=d, model="fraud", interval_s=60, start=False,
...               reporter=CallbackReporter(seen.append))
>>> agent.coverage.summary()
'2 of 2 tensors covered (2101248 of 2101248 bytes): file 2'
>>> agent.check_now().status
'pass'
>>> with torch.no_grad():
...     model.weight.view(-1)[300_000] *= -1                  # byte 1,200,000: block 1
>>> check = agent.check_now()
>>> check.status, [(m["tensor"], m["block"]) for m in check.details["mismatches"]]
('fail', [('weight', 1)])
>>> [e.checks[0].status for e in seen]
['pass', 'fail']
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from goldwatch.checks import Check
from goldwatch.errors import ArtifactError, InvalidInputError
from goldwatch.integrity.manifest import ArtifactManifest
from goldwatch.integrity.verify import verify_artifact
from goldwatch.logs import get_logger
from goldwatch.watchdog.agent.names import Rename
from goldwatch.watchdog.agent.periodic import PeriodicAgent
from goldwatch.watchdog.agent.plan import AttestPolicy, Resolver, plan_expectations
from goldwatch.watchdog.agent.reporter import DEFAULT_TOKEN_ENV, HttpReporter, Reporter
from goldwatch.watchdog.agent.resident import memory_layout, resident_tensors
from goldwatch.watchdog.agent.results import BlockMismatch, PassResult
from goldwatch.watchdog.agent.scan import DEFAULT_SLICE_BYTES, StreamCache, run_pass
from goldwatch.watchdog.agent.sharded import ShardedResult, ShardedWatch

__all__ = [
    "DEFAULT_DUTY_CYCLE", "DEFAULT_GPU_SLICE_BYTES", "DEFAULT_INTERVAL_S", "ResidentAgent", "verify_file", "watch",
    "with_shards",
]

log = get_logger(__name__)

DEFAULT_INTERVAL_S = 60.0
#: the share of one core (CPU) or of the GPU's time the agent may use while a pass runs
DEFAULT_DUTY_CYCLE = 0.01
#: about 0.1 ms of an H100/H200's HBM time per slice
DEFAULT_GPU_SLICE_BYTES = 256 << 20
_MAX_LISTED = 100


def verify_file(artifact: str | os.PathLike[str], manifest: ArtifactManifest) -> None:
    """Verify the model file or directory against its manifest; raise :class:`ArtifactError` saying what differs.

    This is the gate before anything is served or pinned: a model whose file fails is refused, never watched.
    """
    report = verify_artifact(artifact, manifest)
    if not report.ok:
        listed = "; ".join(m.message for m in report.mismatches[:3])
        more = f" (+{len(report.mismatches) - 3} more)" if len(report.mismatches) > 3 else ""
        raise ArtifactError(
            f"the model files do not match their manifest, refusing to load: {listed}{more}", where=str(artifact),
            hint="restore the verified version (goldwatch registry rollback) or rebuild the manifest if the change "
            "was approved",
        )


class ResidentAgent(PeriodicAgent):
    """Watch ``module``'s resident tensors against ``manifest`` (see :func:`watch` for the parameters)."""

    check_name = "resident:fingerprint"

    def __init__(
        self,
        module: Any,
        *,
        manifest: ArtifactManifest | str | os.PathLike[str],
        model: str,
        interval_s: float = DEFAULT_INTERVAL_S,
        duty_cycle: float = DEFAULT_DUTY_CYCLE,
        artifact: str | os.PathLike[str] | None = None,
        file_verified: bool = False,
        version: str | None = None,
        reporter: Reporter | None = None,
        attest: AttestPolicy = "auto",
        exclude: Sequence[str] = (),
        rename: Rename | None = None,
        source: str | None = None,
        resolve: Resolver | None = None,
        slice_bytes: int = DEFAULT_SLICE_BYTES,
        gpu_slice_bytes: int = DEFAULT_GPU_SLICE_BYTES,
        metrics_registry: Any = None,
        group: Any = None,
        collective_timeout_s: float | None = None,
    ) -> None:
        super().__init__(model=model, interval_s=interval_s, version=version, reporter=reporter,
                         metrics_registry=metrics_registry)
        if not 0 < duty_cycle <= 1:
            raise InvalidInputError(f"duty_cycle must be in (0, 1], got {duty_cycle!r}", where="duty_cycle",
                                    hint="e.g. 0.01: the agent uses at most 1% of a core or of the GPU while it runs")
        if slice_bytes < 1 or gpu_slice_bytes < 1:
            raise InvalidInputError("slice sizes must be positive", where="slice_bytes")
        self.duty_cycle = duty_cycle
        self.slice_bytes = slice_bytes
        self.gpu_slice_bytes = gpu_slice_bytes
        manifest = manifest if isinstance(manifest, ArtifactManifest) else ArtifactManifest.load(manifest)
        if artifact is not None and not file_verified:
            verify_file(artifact, manifest)
            file_verified = True
        self.manifest = manifest
        self.module = module
        # sharded parameters (DTensors): each rank fingerprints its shards, one rank merges them at every pass
        self.sharded = ShardedWatch.plan(
            module, manifest, group=group, rename=rename, exclude=exclude,
            collective_timeout_s=collective_timeout_s or max(120.0, 3 * interval_s))
        self.expectations, self.coverage = plan_expectations(
            module, manifest, artifact=artifact, file_verified=file_verified, attest=attest, exclude=exclude,
            rename=rename, source=source, resolve=resolve,
            covered_elsewhere=self.sharded.coverage() if self.sharded is not None else None,
        )
        self._layout = memory_layout(resident_tensors(module))
        self._streams = StreamCache()
        self._passes = 0
        self.last_pass: PassResult | None = None
        self.last_full_pass: PassResult | None = None
        for how, nbytes in self.coverage.bytes_by_how().items():
            if how != "uncovered":
                self.metrics.covered_bytes.labels(model=model, how=how).set(nbytes)
        self.metrics.uncovered_tensors.labels(model=model).set(len(self.coverage.uncovered))
        log.info("watching %s: %s", model, self.coverage.summary())

    def _check(self, *, paced: bool) -> Check:
        local = self._local_check(paced=paced)
        if self.sharded is None or self._stop.is_set():
            return local
        # every rank takes part in the collective after its own pass, whatever that pass found
        shards = self.sharded.run(stop=self._stop, duty_cycle=self.duty_cycle if paced else 1.0)
        self.metrics.bytes_checked.labels(model=self.model).inc(shards.local_bytes)
        self.metrics.busy_seconds.labels(model=self.model).inc(shards.busy_s)
        return with_shards(local, shards)

    def _local_check(self, *, paced: bool) -> Check:
        self._passes += 1
        number = self._passes
        moved = self._layout ^ memory_layout(resident_tensors(self.module))
        if moved:
            names = sorted({str(key[0]) for key in moved})
            return Check(
                name=self.check_name, status="error",
                summary=f"the module's tensors were replaced or reallocated since the agent pinned them ("
                f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}): start a new agent after reloading weights",
                measured={"moved_tensors": len(names), "pass": number}, details={"moved": names[:100]},
            )
        self._streams.order_after_pending_work()
        reported_early = threading.Event()

        def early(m: BlockMismatch) -> None:
            # a bad block is reported the moment it is found, not at the end of a pass that may take minutes
            if paced and not reported_early.is_set():
                reported_early.set()
                self.publish(self._fail_check([m], number=number, complete=False))

        result = run_pass(
            self.expectations, number=number, duty_cycle=self.duty_cycle if paced else 1.0,
            slice_bytes=self.slice_bytes, gpu_slice_bytes=self.gpu_slice_bytes, stop=self._stop,
            on_mismatch=early, streams=self._streams, on_busy=self.metrics.busy_seconds.labels(model=self.model).inc,
        )
        self.last_pass = result
        self.metrics.bytes_checked.labels(model=self.model).inc(result.bytes_checked)
        if result.complete:
            self.last_full_pass = result
            m = self.metrics
            m.check_rate.labels(model=self.model).set(result.bytes_per_s)
            m.duty_cycle.labels(model=self.model).set(result.duty_cycle)
            m.last_pass.labels(model=self.model).set(result.finished)
            m.pass_duration.labels(model=self.model).set(result.wall_s)
            m.mismatched_blocks.labels(model=self.model).set(len(result.mismatches))
        return self.to_check(result)

    def _measured(self, result: PassResult) -> dict[str, float | int | str | bool | None]:
        return {
            "mismatched_blocks": len(result.mismatches), "tensors_checked": result.tensors_checked,
            "bytes_checked": result.bytes_checked, "busy_s": round(result.busy_s, 6), "wall_s": round(result.wall_s, 6),
            "duty_cycle": round(result.duty_cycle, 6), "bytes_per_s": round(result.bytes_per_s, 1),
            "pass": result.number, "covered_bytes": self.coverage.covered_bytes,
            "uncovered_tensors": len(self.coverage.uncovered),
        }

    def _fail_check(self, mismatches: Sequence[BlockMismatch], *, number: int, complete: bool,
                    measured: dict[str, Any] | None = None) -> Check:
        first = mismatches[0]
        tensors = sorted({m.tensor for m in mismatches})
        summary = first.message + (f" (+{len(mismatches) - 1} more block(s) in {len(tensors)} tensor(s))"
                                   if len(mismatches) > 1 else "")
        return Check(
            name=self.check_name, status="fail", summary=summary,
            measured=measured or {"mismatched_blocks": len(mismatches), "pass": number},
            threshold={"mismatched_blocks": 0},
            details={
                # the first bad block at the top level, where a responder (or a page's details) looks first
                "tensor": first.tensor, "block": first.block, "start": first.start, "stop": first.stop,
                "file": first.file, "file_start": first.file_start, "file_stop": first.file_stop,
                "mismatches": [m.to_dict() for m in mismatches[:_MAX_LISTED]], "mismatch_count": len(mismatches),
                "tensors": tensors, "pass": number, "pass_complete": complete,
                "coverage": self.coverage.to_dict(),
            },
        )

    def to_check(self, result: PassResult) -> Check:
        """The ``resident:fingerprint`` check for one pass (fail with tensor, block and byte ranges)."""
        measured = self._measured(result)
        if result.mismatches:
            return self._fail_check(result.mismatches, number=result.number, complete=result.complete,
                                    measured=measured)
        details: dict[str, Any] = {"pass": result.number, "coverage": self.coverage.to_dict()}
        if not result.complete:
            details["incomplete"] = True  # stopped mid-pass: nothing to report either way
            return Check(name=self.check_name, status="skip", summary="the pass was stopped before it finished",
                         measured=measured, details=details)
        if not self.expectations:
            return Check(name=self.check_name, status="skip", measured=measured, details=details,
                         summary=f"no resident tensor is covered: {self.coverage.summary()}")
        return Check(
            name=self.check_name, status="pass", measured=measured, threshold={"mismatched_blocks": 0},
            details=details,
            summary=f"{result.tensors_checked} resident tensors ({result.bytes_checked / 2**20:.1f} MiB) match; "
            + self.coverage.summary(),
        )


def with_shards(local: Check, shards: ShardedResult) -> Check:
    """One rank's check: its own pass (``local``) and the collective check of the sharded tensors. On the rank that
    merged, a differing shard block fails the check, named by tensor, block, byte range and the ranks that hold it.

    >>> from goldwatch.watchdog.agent.sharded import ShardMismatch
    >>> bad = ShardMismatch("embed.weight", "embed.weight", 2, 2 << 20, 3 << 20, (1,), "block",
    ...                     "tensor 'embed.weight' block 2 differs; held by rank 1")
    >>> shards = ShardedResult(merged=True, dst=0, world=2, tensors=1, local_bytes=1 << 20, busy_s=0.01, wall_s=0.02,
    ...                        tensors_verified=1, bytes_verified=3 << 20, mismatches=(bad,))
    >>> check = with_shards(Check("resident:fingerprint", "pass", "1 resident tensor matches", measured={
    ...     "mismatched_blocks": 0}), shards)
    >>> check.status, check.details["tensor"], check.details["block"], check.details["ranks"]
    ('fail', 'embed.weight', 2, [1])
    >>> check.summary
    "sharded tensor 'embed.weight' block 2 differs; held by rank 1 (merged across 2 ranks)"
    """
    measured = {**local.measured, "sharded_tensors": shards.tensors, "sharded_bytes_local": shards.local_bytes,
                "ranks": shards.world}
    info: dict[str, Any] = {"merged_on_rank": shards.dst, "ranks": shards.world, "tensors": shards.tensors}
    if shards.merged:
        info.update(tensors_verified=shards.tensors_verified, bytes_verified=shards.bytes_verified)
    details = {**local.details, "sharded": info}
    if shards.error is not None:
        info["error"] = shards.error
        if local.status == "fail":
            return dataclasses.replace(local, measured=measured, details=details)
        return Check(name=local.name, status="error", measured=measured, details=details,
                     summary=f"the check of the sharded tensors across {shards.world} ranks could not run: "
                     f"{shards.error}")
    if not shards.mismatches:
        status = local.status
        summary = local.summary
        if shards.merged and status == "skip" and not local.details.get("incomplete"):
            status = "pass"  # this rank holds nothing but shards: the merge is its check
            summary = ""
        if shards.merged and status == "pass":
            summary = (f"{summary}; " if summary else "") + (
                f"{shards.tensors_verified} sharded tensor(s) ({shards.bytes_verified / 2**20:.1f} MiB) merged "
                f"across {shards.world} ranks match")
        return dataclasses.replace(local, status=status, summary=summary, measured=measured, details=details)
    first = shards.mismatches[0]
    bad = [m.to_dict() for m in shards.mismatches[:_MAX_LISTED]]
    measured["mismatched_blocks"] = int(measured.get("mismatched_blocks") or 0) + len(shards.mismatches)
    where = "" if "held by" in first.message or not first.ranks else \
        f"; held by rank {', '.join(str(r) for r in first.ranks)}"
    summary = (f"sharded {first.message}{where} (merged across {shards.world} ranks)"
               + (f" (+{len(shards.mismatches) - 1} more)" if len(shards.mismatches) > 1 else ""))
    if local.status == "fail":  # this rank's own bytes differ too: its first block stays at the top level
        details["mismatches"] = [*local.details.get("mismatches", []), *bad]
        return dataclasses.replace(local, summary=f"{local.summary}; {summary}", measured=measured, details=details)
    details.update(tensor=first.tensor, block=first.block, start=first.start, stop=first.stop,
                   ranks=list(first.ranks), mismatches=bad, mismatch_count=len(shards.mismatches),
                   tensors=sorted({m.tensor for m in shards.mismatches}))
    return Check(name=local.name, status="fail", summary=summary, measured=measured, details=details,
                 threshold={"mismatched_blocks": 0})


def watch(
    module: Any,
    *,
    manifest: ArtifactManifest | str | os.PathLike[str],
    model: str,
    interval_s: float = DEFAULT_INTERVAL_S,
    duty_cycle: float = DEFAULT_DUTY_CYCLE,
    artifact: str | os.PathLike[str] | None = None,
    version: str | None = None,
    reporter: Reporter | None = None,
    sidecar_url: str | None = None,
    token_env: str | None = DEFAULT_TOKEN_ENV,
    token_file: str | os.PathLike[str] | None = None,
    attest: AttestPolicy = "auto",
    exclude: Sequence[str] = (),
    rename: Rename | None = None,
    source: str | None = None,
    resolve: Resolver | None = None,
    start: bool = True,
    **options: Any,
) -> ResidentAgent:
    """Watch the resident parameters and buffers of ``module`` from a background thread; return the agent.

    * ``manifest``: the :class:`~goldwatch.integrity.ArtifactManifest` (or its path) of the model's file(s).
    * ``artifact``: the model file or directory the module was loaded from. It is verified against the manifest
      first (a mismatch raises :class:`~goldwatch.errors.ArtifactError`: nothing is pinned from a bad file), and
      dtype conversions are then proven from its bytes.
    * ``model`` names the model in metrics and reports; ``version`` is the served version, if known.
    * ``interval_s``: a full pass starts every ``interval_s`` (or when the previous one ends, if it takes longer);
      ``duty_cycle``: the share of one core, or of the GPU, the agent may use while a pass runs.
    * ``reporter``, or ``sidecar_url`` (+ ``token_env``/``token_file``): where evidence goes
      (:mod:`goldwatch.watchdog.agent.reporter`); neither: only metrics and ``check_now``'s results.
    * ``attest``, ``exclude``, ``rename``, ``source``, ``resolve``: see :mod:`goldwatch.watchdog.agent.plan`.
    * ``start=False`` leaves the thread to :meth:`ResidentAgent.start`; ``options``: ``slice_bytes``,
      ``gpu_slice_bytes``, ``metrics_registry``.
    """
    if reporter is None and sidecar_url is not None:
        reporter = HttpReporter(sidecar_url, token_env=token_env, token_file=Path(token_file) if token_file else None,
                                metrics_registry=options.get("metrics_registry"))
    try:
        agent = ResidentAgent(
            module, manifest=manifest, model=model, interval_s=interval_s, duty_cycle=duty_cycle, artifact=artifact,
            version=version, reporter=reporter, attest=attest, exclude=exclude, rename=rename, source=source,
            resolve=resolve, **options,
        )
    except BaseException:
        if reporter is not None and sidecar_url is not None:
            reporter.close(timeout_s=0.0)
        raise
    if start:
        agent.start()
    return agent

