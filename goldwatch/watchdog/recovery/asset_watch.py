"""The sidecar watching training assets: scheduled restore-and-verify of their backups, the RPO, pages.

:class:`AssetWatch` is a sidecar extension (:mod:`goldwatch.watchdog.sidecar.extensions`) that the service mounts
whenever ``[[recovery.assets]]`` lists an asset. For each asset, every ``verify_interval_s`` (and on ``POST
/v1/assets/{asset}/verify``), a worker thread runs :func:`~.assets.check_asset`; :func:`evaluate` -- pure -- turns
the result and the time into pages and resolves, one incident per asset and class, in the sidecar's journal and
through its alert manager:

=========  ==========  =================================================================================
class      severity    when
=========  ==========  =================================================================================
``backup``  error       a snapshot fails to restore and verify (each one tried is named, with what was wrong)
``rpo``     error       the newest verified restore point is older than ``rpo_seconds`` (checked every
                        second, not only when a verification runs); critical when none verifies at all
``asset``   error       the live asset fails its manifest (a file lost, a digest that differs)
=========  ==========  =================================================================================

Metrics: ``goldwatch_rpo_seconds{asset}`` (the age of the newest verified restore point, now; +Inf when none),
``goldwatch_rpo_target_seconds``, ``goldwatch_restore_point_timestamp_seconds`` and
``goldwatch_backup_verifications_total{asset,outcome}``. ``GET /v1/assets`` shows the last result of each.

>>> from goldwatch.watchdog.recovery.assets import AssetStatus, BackupVerification
>>> bad = BackupVerification("b2", 1060.0, False, ("part-0.csv: sha256 differs",), 0.01, 0.01)
>>> good = BackupVerification("b1", 1000.0, True, (), 0.01, 0.01, 1, 8)
>>> status = AssetStatus("train", 1090.0, 3600.0, (bad, good), good)
>>> [(d.action, d.check_class, d.severity) for d in evaluate(status, now=1090.0, open_classes=())]
[('page', 'backup', 'error')]
>>> [(d.action, d.check_class) for d in evaluate(status, now=5000.0, open_classes=("backup",))]  # 4000 s later
[('page', 'backup'), ('page', 'rpo')]
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import math
import random
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from goldwatch.checks import Check
from goldwatch.config import AssetConfig, GoldwatchConfig
from goldwatch.errors import InvalidInputError
from goldwatch.logs import get_logger
from goldwatch.serialize import to_jsonable
from goldwatch.watchdog.alerts.events import Severity
from goldwatch.watchdog.recovery.assets import AssetStatus, check_asset, iso

if TYPE_CHECKING:
    from goldwatch.watchdog.sidecar.service import SidecarService

__all__ = ["ASSET_CLASSES", "AssetDecision", "AssetWatch", "evaluate"]

log = get_logger(__name__)

ASSET_CLASSES = ("backup", "rpo", "asset")
CHECKPOINT_NAMESPACE = "assets"


@dataclasses.dataclass(frozen=True)
class AssetDecision:
    """Open/update (``page``) or close (``resolve``) the incident of (asset, ``check_class``)."""

    action: Literal["page", "resolve"]
    check_class: str
    summary: str
    severity: Severity | None = None
    checks: tuple[Check, ...] = ()


def _rpo_check(status: AssetStatus, now: float) -> Check:
    point = status.restore_point
    if point is None or point.taken_at is None:
        return next(c for c in status.to_checks() if c.name.startswith("rpo:"))
    rpo = now - point.taken_at
    met = rpo <= status.rpo_target_s
    # the summary names the restore point, not its age: a page is re-sent when the situation changes, not every
    # second the age grows (the age is in the check's numbers and in goldwatch_rpo_seconds)
    return Check(name=f"rpo:{status.asset}", status="pass" if met else "fail",
                 summary=(f"RPO met: the newest verified restore point {point.snapshot} is within the "
                          f"{status.rpo_target_s:g} s target" if met else
                          f"RPO EXCEEDED: the newest verified restore point {point.snapshot} (taken "
                          f"{iso(point.taken_at)}) is older than the {status.rpo_target_s:g} s target"),
                 measured={"rpo_s": round(rpo, 6), "restore_point": point.snapshot,
                           "restore_point_taken_at": point.taken_at},
                 threshold={"rpo_s": status.rpo_target_s})


def evaluate(status: AssetStatus, *, now: float, open_classes: Collection[str]) -> list[AssetDecision]:
    """What to page and resolve for an asset, from its last restore-and-verify and the time (pure)."""
    out: list[AssetDecision] = []
    checks = status.to_checks()
    point = status.restore_point
    where = (f"; newest verified restore point: {point.snapshot} (taken {iso(point.taken_at)})"
             if point is not None and point.taken_at is not None else "; no verified restore point")
    failed = [c for c in checks if c.name.startswith("backup:") and c.status == "fail"]
    if failed:
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        out.append(AssetDecision("page", "backup", f"{status.asset}: backup {failed[0].summary}{more}{where}",
                                 "error", tuple(failed)))
    elif "backup" in open_classes:
        out.append(AssetDecision("resolve", "backup", f"{status.asset}: the newest backup restores and verifies"))
    rpo = _rpo_check(status, now)
    if rpo.status == "fail":
        severity: Severity = "critical" if point is None else "error"
        out.append(AssetDecision("page", "rpo", f"{status.asset}: {rpo.summary}", severity, (rpo,)))
    elif "rpo" in open_classes:
        out.append(AssetDecision("resolve", "rpo", f"{status.asset}: {rpo.summary}"))
    live = status.live
    if live is not None and live.status == "fail":
        out.append(AssetDecision("page", "asset", f"{status.asset}: {live.summary}{where}", "error", (live,)))
    elif "asset" in open_classes:
        out.append(AssetDecision("resolve", "asset", f"{status.asset}: the live asset matches its manifest again"))
    return out


class AssetWatch:
    """The sidecar extension for ``[[recovery.assets]]`` (see the module docstring)."""

    name = "recovery-assets"

    def __init__(self, config: GoldwatchConfig) -> None:
        self.config = config
        self.assets = {a.name: a for a in config.recovery.assets}
        self.scratch = Path(config.recovery.scratch or Path(config.registry.root) / "restore-scratch")
        self.status: dict[str, AssetStatus] = {}
        self.summaries: dict[tuple[str, str], str] = {}
        self._open: dict[str, set[str]] = {name: set() for name in self.assets}
        self._locks: dict[str, asyncio.Lock] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self.service: SidecarService | None = None

    # ---- extension ------------------------------------------------------------------------------------------
    def setup(self, service: SidecarService) -> None:
        self.service = service
        service.subjects.update(self.assets)  # /v1/incidents?model=<asset> shows an asset's incidents
        self.rpo, self.rpo_target, self.restore_point, self.verifications = _metrics(service.metrics.registry)
        for name, asset in self.assets.items():
            self.rpo_target.labels(name).set(asset.rpo_seconds)
            self.rpo.labels(name).set_function(functools.partial(self._rpo_now, name))
        service.add_routes(self._routes(service))
        service.on_start(self._start)
        service.on_stop(self._stop)

    def _rpo_now(self, name: str) -> float:
        status = self.status.get(name)
        point = status.restore_point if status else None
        if point is None or point.taken_at is None:
            return math.inf
        return time.time() - point.taken_at

    async def _start(self) -> None:
        service = self._service()
        for name in self.assets:
            self._locks[name] = asyncio.Lock()
            self._wake[name] = asyncio.Event()
            for row in service.journal.incidents(state="open", model=name):
                self._open[name].add(row.check_class)
                self.summaries[(name, row.check_class)] = row.summary
            saved = service.journal.get_checkpoint(CHECKPOINT_NAMESPACE, name)
            if isinstance(saved, dict):
                with contextlib.suppress(Exception):
                    self.status[name] = restored = _status_from_dict(saved)
                    if restored.restore_point is not None and restored.restore_point.taken_at is not None:
                        self.restore_point.labels(name).set(restored.restore_point.taken_at)
            self._tasks.append(asyncio.create_task(self._loop(name)))
        self._tasks.append(asyncio.create_task(self._tick()))

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def _service(self) -> SidecarService:
        assert self.service is not None, "setup() first"
        return self.service

    # ---- running ------------------------------------------------------------------------------------------
    async def _loop(self, name: str) -> None:
        asset = self.assets[name]
        jitter = self.config.serve.jitter
        while True:
            try:
                await self.verify(name)
            except Exception:  # a verification problem must not end the schedule
                log.exception("%s: restore-and-verify failed", name)
            delay = asset.verify_interval_s * (1 + random.uniform(-jitter, jitter))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake[name].wait(), delay)
            self._wake[name].clear()

    async def verify(self, name: str) -> AssetStatus:
        """Restore-and-verify ``name`` now (one at a time per asset), then page or resolve."""
        from goldwatch.watchdog.sidecar.workers import in_thread

        asset = self._asset(name)
        service = self._service()
        async with self._locks[name]:
            started = service.clock()
            try:
                status = await asyncio.wait_for(
                    in_thread(check_asset, asset, scratch=self.scratch, name=f"goldwatch:{name}:restore-verify"),
                    asset.timeout_s)
            except asyncio.TimeoutError:
                service.responder.record(name, "backup", "observe", f"restore-and-verify of {name} did not finish "
                                         f"within {asset.timeout_s:g} s", detail={"status": "error"})
                raise
            for v in status.verifications:
                self.verifications.labels(name, "ok" if v.ok else "failed").inc()
            self.status[name] = status
            if status.restore_point is not None and status.restore_point.taken_at is not None:
                self.restore_point.labels(name).set(status.restore_point.taken_at)
            service.journal.put_checkpoint(CHECKPOINT_NAMESPACE, name, to_jsonable(dataclasses.asdict(status)))
            service.responder.record(name, "backup", "observe", _observe_text(status), detail={
                "status": "pass" if not status.failed and status.rpo_met else "fail", "asset": name,
                "restore_point": status.restore_point.snapshot if status.restore_point else None,
                "restore_point_taken_at": status.restore_point.taken_at if status.restore_point else None,
                "rpo_s": status.rpo_s, "checked_at": status.checked_at, "started_at": started,
                "failed": [{"snapshot": v.snapshot, "problems": list(v.problems[:5])} for v in status.failed],
                "live": status.live.status if status.live else None})
            await self._apply(name, status, now=status.checked_at)
        return status

    async def _tick(self) -> None:
        """The RPO grows between verifications: page the moment it passes the target."""
        service = self._service()
        while True:
            await asyncio.sleep(1.0)
            for name, status in list(self.status.items()):
                lock = self._locks[name]
                if lock.locked():  # a verification is running: it decides when it is done
                    continue
                async with lock:
                    await self._apply(name, status, now=service.clock(), only=("rpo",))

    async def _apply(self, name: str, status: AssetStatus, *, now: float,
                     only: Collection[str] = ASSET_CLASSES) -> None:
        for d in evaluate(status, now=now, open_classes=self._open[name]):
            if d.check_class not in only:
                continue
            if d.action == "page":
                self._page(name, d, now)
            elif d.check_class in self._open[name]:
                self._resolve(name, d, now)

    def _page(self, name: str, d: AssetDecision, now: float) -> None:
        service = self._service()
        key = (name, d.check_class)
        new = d.check_class not in self._open[name]
        if not new and self.summaries.get(key) == d.summary:
            return
        assert d.severity is not None
        incident = service.journal.open_incident(model=name, check_class=d.check_class, kind="asset",
                                                 severity=d.severity, summary=d.summary, started_at=None,
                                                 detected_at=now, rto_s=None, checks=list(d.checks))
        self._open[name].add(d.check_class)
        self.summaries[key] = d.summary
        service.responder.record(name, "backup", "page", f"{d.severity}: {d.summary}",
                                 detail={"incident": incident, "check_class": d.check_class, "new": new})
        service.alerts.trigger(name, d.check_class, checks=list(d.checks), severity=d.severity, summary=d.summary,
                               details={"asset": name, "incident": incident})
        service.responder.deliver.set()

    def _resolve(self, name: str, d: AssetDecision, now: float) -> None:
        service = self._service()
        self._open[name].discard(d.check_class)
        self.summaries.pop((name, d.check_class), None)
        row = service.journal.open_incident_for(name, d.check_class)
        if row is not None:
            service.journal.resolve_incident(row.id, at=now)
        service.responder.record(name, "backup", "resolve", d.summary, detail={"check_class": d.check_class})
        service.alerts.resolve(name, d.check_class, summary=d.summary)
        service.responder.deliver.set()

    def _asset(self, name: str) -> AssetConfig:
        try:
            return self.assets[name]
        except KeyError:
            from goldwatch.watchdog.sidecar.context import UnknownModelError

            raise UnknownModelError(f"this sidecar watches no asset {name!r} (it watches "
                                    f"{', '.join(sorted(self.assets)) or 'none'})", where="asset") from None

    # ---- the API --------------------------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        now = time.time()
        out = []
        for name, asset in self.assets.items():
            status = self.status.get(name)
            point = status.restore_point if status else None
            out.append({
                "name": name, "kind": asset.kind, "path": str(asset.path), "backups": str(asset.backups),
                "rpo_target_s": asset.rpo_seconds, "rpo_s": None if point is None or point.taken_at is None
                else round(now - point.taken_at, 3), "restore_point": point.snapshot if point else None,
                "checked_at": status.checked_at if status else None, "open": sorted(self._open[name]),
                "checks": [dataclasses.asdict(c) for c in status.to_checks()] if status else [],
            })
        return {"assets": out}

    def _routes(self, service: Any) -> list[Any]:
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        async def assets(request: Request) -> Response:
            """Every training asset: its newest verified restore point, its RPO against the target, its open
            incidents and the checks of its last restore-and-verify."""
            return JSONResponse(to_jsonable(self.view()))

        async def verify(request: Request) -> Response:
            """Restore ASSET's snapshots into the scratch folder and verify them now; answers the RPO and the
            checks (needs the bearer token)."""
            denied = service.authorize(request.headers.get("authorization"))
            if denied is not None:
                return JSONResponse({"error": denied[1]}, status_code=denied[0])
            try:
                status = await self.verify(request.path_params["asset"])
            except InvalidInputError as exc:
                return JSONResponse({"error": str(exc)}, status_code=404)
            except asyncio.TimeoutError:
                return JSONResponse({"error": "the restore-and-verify timed out"}, status_code=503)
            return JSONResponse(to_jsonable({"asset": status.asset, "rpo_s": status.rpo_s, "rpo_met": status.rpo_met,
                                             "checks": [dataclasses.asdict(c) for c in status.to_checks()]}))

        return [Route("/v1/assets", assets, methods=["GET"]),
                Route("/v1/assets/{asset}/verify", verify, methods=["POST"])]


def _metrics(registry: Any) -> tuple[Any, Any, Any, Any]:
    """(RPO, RPO target, restore point time, verifications): the assets' metrics, created in ``registry``."""
    from prometheus_client import Counter, Gauge

    return (
        Gauge("goldwatch_rpo_seconds", "Training RPO: the age of the asset's newest backup that restored and verified "
              "(+Inf when none does)", ["asset"], registry=registry),
        Gauge("goldwatch_rpo_target_seconds", "The asset's RPO target", ["asset"], registry=registry),
        Gauge("goldwatch_restore_point_timestamp_seconds", "When the newest verified restore point's data was read "
              "(epoch seconds)", ["asset"], registry=registry),
        Counter("goldwatch_backup_verifications", "Snapshots restored and verified, by outcome (ok, failed)",
                ["asset", "outcome"], registry=registry),
    )


def document_metrics(registry: Any) -> None:
    """The training assets' metrics in ``registry``, for the reference documentation (goldwatch.reference)."""
    _metrics(registry)


def document_routes() -> list[Any]:
    """The assets' routes as the sidecar serves them, for the reference documentation (goldwatch.reference): built
    over an empty configuration, nothing started or called."""
    return AssetWatch(GoldwatchConfig())._routes(service=None)


def _observe_text(status: AssetStatus) -> str:
    point = status.restore_point
    text = (f"restore point {point.snapshot} verified, RPO {status.rpo_s:.3f} s (target {status.rpo_target_s:g} s)"
            if point is not None else "no backup restores and verifies")
    if status.failed:
        text += f"; {len(status.failed)} snapshot(s) failed: " + "; ".join(
            f"{v.snapshot}: {v.problems[0] if v.problems else 'failed'}" for v in status.failed[:3])
    return text


def _status_from_dict(data: dict[str, Any]) -> AssetStatus:
    from goldwatch.watchdog.recovery.assets import BackupVerification
    from goldwatch.watchdog.sidecar.journal import check_from_dict

    def verification(v: dict[str, Any]) -> BackupVerification:
        return BackupVerification(str(v["snapshot"]), v.get("taken_at"), bool(v["ok"]), tuple(v.get("problems") or ()),
                                  float(v.get("restore_s") or 0.0), float(v.get("verify_s") or 0.0),
                                  int(v.get("files") or 0), int(v.get("size_bytes") or 0))

    point = data.get("restore_point")
    live = data.get("live")
    return AssetStatus(str(data["asset"]), float(data["checked_at"]), float(data["rpo_target_s"]),
                       tuple(verification(v) for v in data.get("verifications") or ()),
                       verification(point) if isinstance(point, dict) else None,
                       check_from_dict(live) if isinstance(live, dict) else None)
