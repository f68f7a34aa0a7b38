"""Disaster-recovery drills: inject each scenario's fault into a stack named as a drill target, measure what
goldwatch did about it, put the stack back, and report each figure against its target.

The five scenarios (:mod:`.scenarios`) become six measured faults:

====  =======================================================  =========================================
key   fault (reversible)                                        measured against
====  =======================================================  =========================================
1     the model's server is killed (undo: started again)        the fallback's RTO (traffic on the fallback)
2     one byte of a served file is flipped                      the model's RTO (rolled back, verified)
3     every weight in the server's memory is shifted            the model's RTO (rolled back, verified)
3b    the same, again, with no known-good version left          the fallback's RTO (traffic on the fallback)
4     the server's device is lost (goldwatch's runtime hook)    the CPU variant's RTO (traffic on the CPU)
5     the live training data loses a file and the newest        the asset's RPO: the newest verified restore
      backup gets a flipped byte (undo: both put back)          point, exactly
====  =======================================================  =========================================

For each: the stack must be healthy first; the fault is injected (recorded with how to undo it, so a killed drill
leaves instructions in ``drill-undo.json``); detection, the action, the recovery of service and the incident's
resolution are read from the sidecar's journal and incidents, the pages from the PagerDuty stand-in when there is
one, and the clients' view from a :class:`~.probe.Prober` sending requests through the serving path; then the
fault is undone and the stack restored (a version the drill made the sidecar quarantine is added again, same bytes,
and served) before the next scenario starts. The serving RTO measured is the later of the sidecar's recovery point
and the moment clients' answers became right for good: a figure never looks better than what clients saw.

**The safety rule.** Faults go only into a stack named explicitly as a drill target: the local stack the drill
builds itself (``--local-stack``), or a stack whose goldwatch.toml says ``[drill] drill_target = true`` and whose
``[drill] stack`` name the command repeats (``--stack NAME``). In-memory faults need the server to run goldwatch's
fault-injecting runtime with ``GOLDWATCH_FAULT_INJECTION=1``, which refuses otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from goldwatch import progress
from goldwatch.config import GoldwatchConfig, ServeWatchConfig
from goldwatch.errors import ConfigError, GoldwatchError, InvalidInputError, StateError
from goldwatch.watchdog.recovery.scenarios import Scenario, scenario

__all__ = [
    "KEYS",
    "DrillReport",
    "DrillTarget",
    "ScenarioResult",
    "TimelineEntry",
    "named_target",
    "parse_scenarios",
    "run_drill",
]

T = TypeVar("T")
KEYS = ("1", "2", "3", "3b", "4", "5")
UNDO_FILE = "drill-undo.json"


class DrillRefused(ConfigError):
    """The stack is not named as a drill target: nothing was injected."""


@dataclasses.dataclass(frozen=True)
class TimelineEntry:
    """One line of a scenario's timeline: seconds after the fault, who, what."""

    t: float
    source: Literal["drill", "sidecar", "pagerduty", "clients"]
    what: str


@dataclasses.dataclass(frozen=True)
class ScenarioResult:
    """One measured fault. Times are seconds after the fault was injected (None: did not happen).

    ``measured_s`` is the figure held against ``target_s``: the serving RTO, or for the training scenario the RPO.
    ``status``: pass (target met, stack recovered and restored), fail (the target was missed, or ``problems``),
    error (the drill could not complete it), skip (``summary`` says why)."""

    key: str
    slug: str
    title: str
    subject: str
    fault: str
    target_name: str
    target_s: float | None
    measured_s: float | None
    status: Literal["pass", "fail", "error", "skip"]
    summary: str
    detected_s: float | None = None
    paged_s: float | None = None
    page_delivered_s: float | None = None
    page_resolved_s: float | None = None
    acted_s: float | None = None
    restored_s: float | None = None
    resolved_s: float | None = None
    client: dict[str, Any] | None = None
    rpo: dict[str, Any] | None = None
    action: str | None = None
    incident: dict[str, Any] | None = None
    pages: tuple[str, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    notes: tuple[str, ...] = ()
    duration_s: float = 0.0
    problems: tuple[str, ...] = ()  # what went wrong besides the figure (a scenario with problems fails)

    @property
    def met(self) -> bool:
        return self.status == "pass"


@dataclasses.dataclass(frozen=True)
class DrillReport:
    """Every scenario's result, and the drill as a whole: ``ok`` when every target was met."""

    stack: str
    started_at: float
    duration_s: float
    results: tuple[ScenarioResult, ...]
    config: str
    runbooks: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.status in ("pass", "skip") for r in self.results) and any(
            r.status == "pass" for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 when every target was met (a skipped scenario says why in the report), else 1."""
        return 0 if self.ok else 1


@dataclasses.dataclass
class DrillTarget:
    """A stack a drill may inject faults into (see the safety rule in the module docstring)."""

    name: str
    config: GoldwatchConfig
    sidecar: Any  # SidecarClient
    model: str
    asset: str | None
    stop_server: Callable[[], None] | None
    start_server: Callable[[], None] | None
    stop_how: str = ""
    pagerduty: Any = None  # PagerDutyStub (the local stack), else pages are read from the sidecar's journal
    client_url: str | None = None
    probe_inputs: dict[str, Any] | None = None
    answers: dict[str, dict[str, Any]] | None = None
    tolerance: tuple[float, float] = (1e-4, 1e-4)  # (atol, rtol) of the clients' answers

    @property
    def watch(self) -> ServeWatchConfig:
        return next(w for w in self.config.serve.watch if w.name == self.model)


def parse_scenarios(text: str) -> tuple[str, ...]:
    """``all``, or comma-separated scenario numbers/slugs (``3`` runs 3 and 3b).

    >>> parse_scenarios("all"), parse_scenarios("gpu-lost,1")
    (('1', '2', '3', '3b', '4', '5'), ('1', '4'))
    """
    if text.strip() == "all":
        return KEYS
    keys: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            found = scenario(part.removesuffix("b")).number + ("b" if part == "3b" else "")
        except KeyError:
            raise InvalidInputError(f"unknown scenario {part!r}", where="SCENARIO",
                                    hint="use all, 1-5 or a name: server-unreachable, model-corrupted, model-wrong, "
                                         "gpu-lost, training-data-lost") from None
        keys += ["3", "3b"] if found == "3" else [found]
    return tuple(k for k in KEYS if k in keys)


def named_target(config: GoldwatchConfig, *, stack: str | None, token: str | None) -> DrillTarget:
    """The stack ``goldwatch.toml`` describes, if and only if it is named as a drill target (the safety rule)."""
    from goldwatch.watchdog.sidecar.process import SidecarClient

    drill = config.drill
    if stack is None:
        raise DrillRefused("refusing to inject faults: no stack was named", where="--stack",
                           hint="name the stack (--stack NAME, as [drill] stack says) or use --local-stack")
    if not drill.drill_target or drill.stack != stack:
        why = ("its goldwatch.toml does not say [drill] drill_target = true" if not drill.drill_target else
               f"its goldwatch.toml names it {drill.stack!r}" if drill.stack else "its goldwatch.toml names no stack")
        raise DrillRefused(f"refusing to inject faults into stack {stack!r}: {why}", where="[drill]",
                           hint="only a stack whose config sets drill_target = true and stack = NAME, named again "
                                "with --stack NAME, is a drill target")
    if not config.serve.watch:
        raise ConfigError("the stack's config watches no model", where="[serve.watch]")
    model = drill.model or config.serve.watch[0].name
    if model not in {w.name for w in config.serve.watch}:
        raise ConfigError(f"[drill] model {model!r} is not a watched model", where="[drill] model")
    asset = drill.asset or (config.recovery.assets[0].name if config.recovery.assets else None)
    if asset is not None and asset not in {a.name for a in config.recovery.assets}:
        raise ConfigError(f"[drill] asset {asset!r} is not in [[recovery.assets]]", where="[drill] asset")
    url = drill.sidecar_url or (f"http://{'127.0.0.1' if config.serve.host in ('0.0.0.0', '::') else config.serve.host}"
                                f":{config.serve.port}")

    def command(argv: list[str] | None) -> Callable[[], None] | None:
        if not argv:
            return None

        def run() -> None:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=drill.scenario_timeout_s,
                                  check=False)
            if done.returncode != 0:
                raise StateError(f"{' '.join(argv)} exited with status {done.returncode}: "
                                 f"{(done.stderr or done.stdout).strip()[-300:]}", where="[drill]")
        return run

    target = DrillTarget(name=stack, config=config, sidecar=SidecarClient(url.rstrip("/"), token), model=model,
                         asset=asset, stop_server=command(drill.stop_command),
                         start_server=command(drill.start_command), stop_how=" ".join(drill.stop_command or []),
                         client_url=drill.client_url)
    if drill.client_url:
        target.probe_inputs, target.answers, target.tolerance = approved_answers(config, target.watch)
    return target


def approved_answers(config: GoldwatchConfig, watch: ServeWatchConfig, *, rows: int = 4,
                     ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]] | None, tuple[float, float]]:
    """What clients may be answered, from the golden sets: the first ``rows`` inputs of the served version's set,
    and the expected answers of every approved model whose set holds the same inputs (the served version and the
    CPU variant, each known-good version, the fallback). Tolerance: the loosest calibrated one of the served set.
    (None, None) when the served version has no golden set."""
    import numpy as np

    from goldwatch.golden_sets import GoldenSet
    from goldwatch.watchdog.sidecar.targets import open_target

    sets: dict[str, Path] = {}
    try:
        target = open_target(watch, config.registry)
    except GoldwatchError:
        return None, None, (1e-4, 1e-4)
    try:
        served = target.served()
        if served.golden:
            sets["served"] = Path(served.golden[0])
        registry = getattr(target, "registry", None)
        if registry is not None:
            for mv in registry.list(target.model, state="known-good"):  # type: ignore[attr-defined]
                if mv.golden:
                    sets.setdefault(f"version {mv.version}", Path(mv.golden[0]))
    finally:
        target.close()
    if watch.fallback is not None:
        sets["fallback"] = Path(watch.fallback.golden[0])
    if "served" not in sets:
        return None, None, (1e-4, 1e-4)
    base = GoldenSet.load(sets["served"])
    inputs = {k: np.asarray(v)[:rows] for k, v in base.inputs.items()}
    answers: dict[str, dict[str, Any]] = {}
    for label, path in sets.items():
        with contextlib.suppress(GoldwatchError, OSError):
            g = base if label == "served" else GoldenSet.load(path)
            same = set(g.inputs) == set(inputs) and all(
                np.asarray(g.inputs[k])[:rows].shape == inputs[k].shape and
                np.array_equal(np.asarray(g.inputs[k])[:rows], inputs[k]) for k in inputs)
            if same:
                answers[label] = {k: np.asarray(v)[:rows] for k, v in g.expected.items()}
    atol = max([1e-4, *(t.atol for t in base.tolerances.values())])
    rtol = max([1e-4, *(t.rtol for t in base.tolerances.values())])
    return inputs, answers, (atol, rtol)


# ---- running ----------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Mark:
    t0: float
    cursor: int
    pd: int


class _Undo:
    """Faults injected and not yet undone, written to ``drill-undo.json`` before each injection."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.pending: list[tuple[str, str, Callable[[], None]]] = []

    def add(self, what: str, manual: str, undo: Callable[[], None]) -> None:
        self.pending.append((what, manual, undo))
        self._save()

    def done(self, what: str) -> None:
        self.pending = [p for p in self.pending if p[0] != what]
        self._save()

    def undo_all(self) -> list[str]:
        problems = []
        for what, _manual, undo in reversed(self.pending):
            try:
                undo()
            except Exception as exc:  # keep undoing the rest; say what could not be undone
                problems.append(f"{what}: {exc}")
        self.pending = []
        self._save()
        return problems

    def _save(self) -> None:
        if self.path is None:
            return
        if not self.pending:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"pending": [{"fault": w, "undo": m} for w, m, _ in self.pending]},
                                        indent=2))


class _Skip(Exception):
    """The scenario cannot run on this stack (the message says why)."""


class Drill:
    """Runs scenarios against one :class:`DrillTarget` (see :func:`run_drill`)."""

    def __init__(self, target: DrillTarget, *, say: Callable[[str], None], undo_path: Path | None) -> None:
        self.target = target
        self.say = say
        self.timeout_s = target.config.drill.scenario_timeout_s
        self.undo = _Undo(undo_path)
        self.prober: Any = None
        self.decisions: list[dict[str, Any]] = []
        self.keys: tuple[str, ...] = ()
        self._pending3: str | None = None

    # ---- reading the stack ---------------------------------------------------------------------------------
    def _refresh(self) -> None:
        after = self.decisions[-1]["id"] if self.decisions else 0
        while True:
            batch = self.target.sidecar.decisions(after)
            if not batch:
                return
            self.decisions += batch
            after = batch[-1]["id"]

    def _since(self, mark: _Mark, *, subject: str | None = None) -> list[dict[str, Any]]:
        self._refresh()
        return [d for d in self.decisions if d["id"] > mark.cursor and (subject is None or d["model"] == subject)]

    def _wait(self, what: str, probe: Callable[[], T | None], *, timeout: float | None = None) -> T:
        import httpx

        deadline = time.monotonic() + (timeout or self.timeout_s)
        while True:
            try:
                found = probe()
            except (GoldwatchError, httpx.HTTPError):
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout or self.timeout_s:g} s waiting for {what} "
                                   f"({self._situation()})")
            time.sleep(0.05)

    def _situation(self) -> str:
        """What the sidecar says about the model now, in a line (for a timeout's message)."""
        try:
            m = self._model_status()
        except Exception as exc:  # the sidecar itself may be the problem
            return f"the sidecar's status cannot be read: {exc}"
        failing = [f"{k} {c.get('status')}: {(c.get('summary') or '')[:100]}"
                   for k, c in (m.get("checks") or {}).items() if c.get("status") in ("fail", "error")]
        incidents = [f"{i['check_class']}: {i['summary'][:120]}" for i in m.get("incidents") or ()]
        text = (f"{m['name']}: {'healthy' if m['healthy'] else 'unhealthy'}, route {m.get('route')}, serving "
                f"{m.get('served_version')}; failing: {'; '.join(failing) or 'none'}; open incidents: "
                f"{'; '.join(incidents) or 'none'}")
        if self.target.asset is not None:
            with contextlib.suppress(Exception):
                a = self._asset_view()
                text += (f"; {a['name']}: restore point {a['restore_point']}, RPO {a['rpo_s']} s, open incidents: "
                         f"{', '.join(a['open']) or 'none'}")
        return text

    def _incident(self, subject: str, cls: str, *, since: float, state: str | None = None) -> dict[str, Any] | None:
        found = [i for i in self.target.sidecar.incidents(model=subject, limit=50)
                 if i["check_class"] == cls and i["detected_at"] >= since and (state is None or i["state"] == state)]
        return found[-1] if found else None

    def _mark(self) -> _Mark:
        self._refresh()
        pd = self.target.pagerduty
        return _Mark(time.time(), self.decisions[-1]["id"] if self.decisions else 0,
                     len(pd.requests) if pd is not None else 0)

    def _model_status(self) -> dict[str, Any]:
        status = self.target.sidecar.status()
        return next(m for m in status["models"] if m["name"] == self.target.model)

    def _healthy(self) -> bool:
        m = self._model_status()
        # a standby warning (an alternate failing its golden sets) does not hold the drill up: the scenario that
        # needs that alternate reports it
        incidents = [i for i in m["incidents"] if i["check_class"] != "standby"]
        return bool(m["healthy"] and m.get("route", "primary") == "primary" and not incidents and not m["acting"])

    def wait_healthy(self, what: str = "the model to be healthy") -> None:
        self._wait(what, self._healthy)

    def _asset_view(self) -> dict[str, Any]:
        data = self.target.sidecar.get("/v1/assets")
        return next(a for a in data["assets"] if a["name"] == self.target.asset)

    # ---- faults ---------------------------------------------------------------------------------------------
    def _fault_hook(self, fault: dict[str, Any]) -> None:
        """The primary's runtime fault hook (goldwatch's fault-injecting MLServer runtime)."""
        from goldwatch._http import client

        url = self.target.watch.url.rstrip("/") + "/infer"
        body = {"inputs": [{"name": "goldwatch_fault", "shape": [1], "datatype": "INT64", "data": [0]}],
                "parameters": {"goldwatch_fault": fault}}
        with client(timeout=30.0, urls=[url]) as http:
            resp = http.post(url, json=body)
        if resp.status_code != 200:
            raise StateError(f"the server's fault hook refused {fault}: HTTP {resp.status_code}: {resp.text[:300]}",
                             where=url, hint="the server must run goldwatch.watchdog.agent.mlserver_faults."
                                             "FaultInjectingModel with GOLDWATCH_FAULT_INJECTION=1")

    def _reload_primary(self) -> None:
        from goldwatch.watchdog.registry import OipReloader
        from goldwatch.watchdog.sidecar.targets import split_model_url

        base, _path, name = split_model_url(self.target.watch.url)
        reloader = OipReloader(base, model_name=name)
        try:
            reloader.reload(model=self.target.model, version=None, path=Path("."))
            reloader.wait_ready(timeout_s=30.0)
        finally:
            reloader.close()

    def _standby_now(self) -> None:
        """Ask the sidecar to verify the alternates now (with the token; else they wait for their schedule)."""
        if self.target.sidecar.token and (self.target.watch.fallback or self.target.watch.cpu_variant):
            with contextlib.suppress(Exception):
                self.target.sidecar.post(f"/v1/models/{self.target.model}/check", {"checks": ["standby"]},
                                         timeout=60.0)

    def _reload_cpu_variant(self) -> None:
        """The CPU variant serves what the registry serves: after the drill changed that, it loads it again."""
        from goldwatch.watchdog.registry import OipReloader
        from goldwatch.watchdog.sidecar.targets import split_model_url

        variant = self.target.watch.cpu_variant
        if variant is None:
            return
        base, _path, name = split_model_url(variant.url)
        reloader = OipReloader(base, model_name=name)
        try:
            reloader.reload(model=name, version=None, path=Path("."))
            reloader.wait_ready(timeout_s=30.0)
        finally:
            reloader.close()

    @contextlib.contextmanager
    def _registry(self) -> Iterator[Any]:
        from goldwatch.watchdog.sidecar.targets import RegistryTarget

        if not self.target.watch.uses_registry:
            raise _Skip(f"{self.target.model} is watched without a registry: there is no rollback to drill")
        target = RegistryTarget(self.target.watch, self.target.config.registry)
        try:
            yield target
        finally:
            target.close()

    def _served_version(self) -> str | None:
        with self._registry() as target:
            version: str | None = target.served().version
            return version

    def _restore_version(self, version: str, *, why: str) -> str:
        """Serve again the bytes of ``version`` (quarantined by the drill's fault): added as a new version with the
        same golden sets, promoted, the server reloaded. A quarantined version never becomes known-good again."""
        with self._registry() as target:
            reg = target.registry
            model = target.model
            mv = reg.get(model, version)
            new = reg.add(model, mv.path, golden=list(mv.golden), actor="goldwatch-drill",
                          reason=f"the drill restores the stack: {version}'s bytes again ({why})")
            reg.promote(model, new.version, actor="goldwatch-drill",
                        reason=f"the drill restores the stack: serving {version}'s bytes again as {new.version}")
        self._reload_cpu_variant()
        return str(new.version)

    # ---- measuring ------------------------------------------------------------------------------------------
    def _pages(self, mark: _Mark, subject: str, cls: str) -> tuple[float | None, float | None, tuple[str, ...]]:
        """(first trigger received, its resolve received, the summaries) from the PagerDuty stand-in."""
        pd = self.target.pagerduty
        if pd is None:
            return None, None, ()
        key = f"goldwatch/{subject}/{cls}"
        events = [r for r in pd.accepted[mark.pd:] if isinstance(r.body, dict) and r.body.get("dedup_key") == key]
        triggers = [r for r in events if r.body.get("event_action") == "trigger"]
        resolves = [r for r in events if r.body.get("event_action") == "resolve"]
        summaries = tuple(str(r.body.get("payload", {}).get("summary")) for r in triggers)
        return (triggers[0].at - mark.t0 if triggers else None, resolves[-1].at - mark.t0 if resolves else None,
                summaries)

    def _timeline(self, mark: _Mark, subject: str, extra: Sequence[TimelineEntry]) -> tuple[TimelineEntry, ...]:
        lines = list(extra)
        seen_fail: set[str] = set()
        for d in self._since(mark, subject=subject):
            text = _describe(d, seen_fail)
            if text:
                lines.append(TimelineEntry(round(d["at"] - mark.t0, 3), "sidecar", text))
        pd = self.target.pagerduty
        if pd is not None:
            for r in pd.accepted[mark.pd:]:
                body = r.body if isinstance(r.body, dict) else {}
                if str(body.get("dedup_key", "")).startswith(f"goldwatch/{subject}/"):
                    lines.append(TimelineEntry(round(r.at - mark.t0, 3), "pagerduty",
                                               f"PagerDuty received {body.get('event_action')} "
                                               f"{body.get('dedup_key')}"))
        return tuple(sorted(lines, key=lambda e: e.t))

    def _client(self, start: float, end: float) -> dict[str, Any] | None:
        if self.prober is None:
            return None
        view = self.prober.window(start, end)
        return dataclasses.asdict(view) | {"lost": view.lost}

    def _first(self, mark: _Mark, subject: str, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        return next((d for d in self._since(mark, subject=subject) if pred(d)), None)

    # ---- the scenarios ----------------------------------------------------------------------------------------
    def run(self, keys: Sequence[str]) -> list[ScenarioResult]:
        """Each scenario in turn (a progress task of ``len(keys)`` scenarios)."""
        results = []
        self.keys = tuple(keys)
        with progress.task(f"drill of stack {self.target.name}", total=len(keys), unit="scenarios"):
            for key in keys:
                with progress.isolated():  # the bytes of a version restored are not scenarios
                    results.append(self._one(key))
                progress.advance(1)
        return results

    def _one(self, key: str) -> ScenarioResult:
        """Run one scenario; a scenario that cannot complete is reported (error), and the stack given time to
        recover before the next."""
        import httpx

        t = time.perf_counter()
        s = scenario(key.removesuffix("b"))
        try:
            result = getattr(self, f"_s{key}")(s)
        except _Skip as why:
            result = ScenarioResult(key, s.slug, _title(key, s), self._subject(key), "-", _target_name(s), None,
                                    None, "skip", str(why))
        except (GoldwatchError, TimeoutError, OSError, httpx.HTTPError) as exc:
            problems = self.undo.undo_all()
            note = f"; undo problems: {'; '.join(problems)}" if problems else ""
            result = ScenarioResult(key, s.slug, _title(key, s), self._subject(key), "-", _target_name(s), None,
                                    None, "error", f"the drill could not complete it: {exc}{note}")
        result = dataclasses.replace(result, duration_s=round(time.perf_counter() - t, 3))
        self.say(f"scenario {key} ({s.slug}): {result.status.upper()}: {result.summary}")
        if result.status == "error":
            with contextlib.suppress(Exception):
                self.wait_healthy("the stack to recover after a scenario that could not complete")
        return result

    def _subject(self, key: str) -> str:
        return (self.target.asset or "-") if key == "5" else self.target.model

    def _serving(self, key: str, s: Scenario, *, fault: str, inject: Callable[[], None], undo: Callable[[], None],
                 manual: str, cls: str, routed: bool, target_s: float,
                 restore: Callable[[], list[str]] | None = None, wait_action_s: float | None = None,
                 precondition: Callable[[], None] | None = None) -> ScenarioResult:
        """Inject a serving fault, wait for the sidecar's action (a route, or a resolved rollback), undo, restore,
        and measure."""
        model = self.target.model
        self.wait_healthy()
        if precondition is not None:
            precondition()
        version_before = self._served_version() if self.target.watch.uses_registry else None
        mark = self._mark()
        drill_lines = [TimelineEntry(0.0, "drill", f"fault injected: {fault}")]
        self.undo.add(fault, manual, undo)
        inject()
        notes: list[str] = []
        problems: list[str] = []
        if routed:
            routed_d = self._wait(f"the sidecar to route {model}'s traffic away", lambda: self._first(
                mark, model, lambda d: d["action"] in ("routed", "route-failed")), timeout=wait_action_s)
            if routed_d["action"] != "routed":
                problems.append(f"traffic did not move: {routed_d['reason']}")
            restored_at = float(routed_d["detail"].get("routed_at") or routed_d["at"]) if routed_d["action"] == \
                "routed" else None
            # the clients on the alternate for a moment before the primary comes back
            time.sleep(0.5)
        else:
            inc = self._wait(f"the {cls} incident of {model} to resolve", lambda: self._incident(
                model, cls, since=mark.t0, state="resolved"), timeout=wait_action_s)
            restored_at = float(inc["recovered_at"])
        undo_at = time.time()
        drill_lines.append(TimelineEntry(round(undo_at - mark.t0, 3), "drill", f"fault undone: {manual}"))
        undo()
        self.undo.done(fault)
        inc = self._wait(f"the {cls} incident of {model} to resolve", lambda: self._incident(
            model, cls, since=mark.t0, state="resolved"))
        client = self._client(mark.t0, undo_at)
        if restore is not None:
            notes += restore()
        if self.target.watch.uses_registry and self._served_version() != version_before:
            self._reload_cpu_variant()  # it serves what the registry serves: it follows the rollback
        self._standby_now()
        self.wait_healthy("the stack to be healthy again after the scenario")
        end = time.time()
        paged, page_resolved, pages = self._pages(mark, model, cls)
        detected = self._first(mark, model, lambda d: d["action"] == "observe" and d["kind"] in
                               {k for k in _KINDS[cls]} and (d["detail"] or {}).get("status") in ("fail", "error"))
        page_d = self._first(mark, model, lambda d: d["action"] == "page")
        restored_s = None if restored_at is None else round(restored_at - mark.t0, 6)
        measured = restored_s
        if client is not None and measured is not None:
            measured = round(max(measured, float(client["restored_s"])), 6)
        after = self._client(undo_at, end)
        if after is not None and after["lost"]:
            problems.append(f"{after['lost']} client request(s) failed on the way back to the primary "
                            f"({', '.join(after['examples'])})")
        action = (inc.get("action") or {}) if inc else {}
        met = measured is not None and measured <= target_s and not problems
        if measured is None:
            summary = f"not recovered: {'; '.join(problems) or 'no action'}"
        else:
            summary = (f"service restored {measured:.2f} s after the fault (target {target_s:g} s"
                       f"{'' if measured <= target_s else ', MISSED'}): {action.get('summary') or inc.get('summary')}")
        return ScenarioResult(
            key=key, slug=s.slug, title=_title(key, s), subject=model, fault=fault, target_name="serving RTO",
            target_s=target_s, measured_s=measured, status="pass" if met else "fail", summary=summary,
            detected_s=_rel(detected["at"] if detected else None, mark.t0),
            paged_s=_rel(page_d["at"] if page_d else None, mark.t0), page_delivered_s=_round(paged),
            page_resolved_s=_round(page_resolved), acted_s=_rel(inc.get("acted_at"), mark.t0), restored_s=restored_s,
            resolved_s=_rel(inc.get("recovered_at"), mark.t0), client=client, action=action.get("kind"),
            incident=inc, pages=pages, timeline=self._timeline(mark, model, drill_lines),
            notes=tuple(notes), problems=tuple(problems))

    def _s1(self, s: Scenario) -> ScenarioResult:
        w = self.target.watch
        if self.target.stop_server is None or self.target.start_server is None:
            raise _Skip("[drill] stop_command and start_command are not set: the drill cannot stop the model's "
                        "server and start it again")
        if w.fallback is None:
            raise _Skip(f"{w.name} has no [serve.watch.fallback]: there is no degradation path to drill")
        stop, start = self.target.stop_server, self.target.start_server
        return self._serving("1", s, fault=f"the model's server is stopped ({self.target.stop_how or 'killed'})",
                             inject=stop, undo=start, manual="start the model's server again", cls="server",
                             routed=True, target_s=w.fallback.rto_seconds or self._rto())

    def _s2(self, s: Scenario) -> ScenarioResult:
        from goldwatch.watchdog.recovery.assets import flip_byte

        before: dict[str, Any] = {}

        def inject() -> None:
            with self._registry() as target:
                served = target.served()
            if served.path is None or served.manifest is None:
                raise _Skip("the served files are not on this machine: the drill cannot corrupt them")
            path = Path(served.path)
            files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()
                           and not p.name.startswith("."))
            victim = max(files, key=lambda p: p.stat().st_size)
            before.update(path=victim, offset=victim.stat().st_size // 2, version=served.version)
            flip_byte(victim, before["offset"], mask=0x40)

        def undo() -> None:
            victim = before.get("path")
            if victim is not None and Path(victim).exists():  # still served (no rollback): flip it back
                flip_byte(Path(victim), before["offset"], mask=0x40)
                before["path"] = None

        def restore() -> list[str]:
            version = before.get("version")
            if version is None or self._served_version() == version:
                return []
            new = self._restore_version(version, why="scenario 2 quarantined it")
            return [f"restored: {version}'s bytes are served again as version {new}"]

        return self._serving("2", s, fault="one byte of the served weights file is flipped", inject=inject,
                             undo=undo, manual="flip the byte back (if the file is still served)", cls="integrity",
                             routed=False, target_s=self._rto(), restore=restore)

    def _s3(self, s: Scenario) -> ScenarioResult:
        state: dict[str, Any] = {}

        def inject() -> None:
            state["version"] = self._served_version()
            self._fault_hook({"perturb": 0.5})

        return self._serving("3", s, fault="every weight in the server's memory is shifted by +0.5 (files intact)",
                             inject=inject, undo=lambda: None, manual="nothing: the rollback reloaded the server",
                             cls="golden", routed=False, target_s=self._rto(),
                             restore=lambda: self._after3(state))

    def _after3(self, state: dict[str, Any]) -> list[str]:
        version = state.get("version")
        if version is None or self._served_version() == version:
            return []
        if "3b" in self.keys:
            # scenario 3b runs next: it needs the version 3 quarantined to stay so (nothing left to roll back to),
            # and restores the registry itself
            self._pending3 = version
            return [f"{version} stays quarantined for scenario 3b, which restores it"]
        new = self._restore_version(version, why="scenario 3 quarantined it")
        return [f"restored: {version}'s bytes are served again as version {new}"]

    def _s3b(self, s: Scenario) -> ScenarioResult:
        w = self.target.watch
        if w.fallback is None:
            raise _Skip(f"{w.name} has no [serve.watch.fallback]: there is no degradation path to drill")
        quarantined = getattr(self, "_pending3", None)

        def precondition() -> None:
            with self._registry() as target:
                report = target.registry.check(target.model)
            if report.target is not None:
                raise _Skip(f"{w.name} still has a verified rollback target ({report.target}): scenario 3 without a "
                            "known-good version needs none left (run it right after scenario 3, or on a model with "
                            "one version)")

        def restore() -> list[str]:
            if quarantined is None:
                return []
            new = self._restore_version(quarantined, why="scenario 3 quarantined it")
            self._pending3 = None
            return [f"restored: {quarantined}'s bytes are served again as version {new}"]

        try:
            return self._serving("3b", s, fault="every weight in the server's memory is shifted by +0.5, with no "
                                 "known-good version left to roll back to",
                                 inject=lambda: self._fault_hook({"perturb": 0.5}), undo=self._reload_primary,
                                 manual="reload the model in its server (its files are intact)", cls="golden",
                                 routed=True, target_s=w.fallback.rto_seconds or self._rto(), restore=restore,
                                 precondition=precondition)
        except _Skip:
            if quarantined is not None:
                with contextlib.suppress(Exception):
                    restore()
            raise

    def _s4(self, s: Scenario) -> ScenarioResult:
        w = self.target.watch
        if w.cpu_variant is None:
            raise _Skip(f"{w.name} has no [serve.watch.cpu_variant]: there is nothing to fail over to")
        return self._serving("4", s, fault="the server's device is lost (every request fails with a device error; "
                             "its metadata reports the device lost)",
                             inject=lambda: self._fault_hook({"device": "lost"}),
                             undo=lambda: self._fault_hook({"device": "restored"}),
                             manual="restore the device (the fault hook: {\"device\": \"restored\"})", cls="device",
                             routed=True, target_s=w.cpu_variant.rto_seconds or self._rto())

    def _rto(self) -> float:
        return self.target.watch.rto_seconds or self.target.config.alerts.rto_seconds

    def _s5(self, s: Scenario) -> ScenarioResult:
        from goldwatch.watchdog.recovery.assets import flip_byte, list_backups

        name = self.target.asset
        if name is None:
            raise _Skip("no [[recovery.assets]]: there is no training asset to drill")
        asset = next(a for a in self.target.config.recovery.assets if a.name == name)
        backups, _broken = list_backups(asset)
        if len(backups) < 2:
            raise _Skip(f"{name} has {len(backups)} backup(s): the drill corrupts the newest and needs an older one")
        newest, expected = backups[0], backups[1]
        self._wait(f"{name} to verify clean", lambda: (lambda a: not a["open"] and a["restore_point"] ==
                                                       newest.snapshot)(self._asset_view()))
        victim = max((p for p in newest.data.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        live = sorted(p for p in Path(asset.path).rglob("*") if p.is_file()) if Path(asset.path).is_dir() else \
            [Path(asset.path)]
        lost = live[0]
        saved = lost.read_bytes()
        mark = self._mark()
        fault = (f"the live {asset.kind} loses {lost.name}, and one byte of {victim.name} in the newest backup "
                 f"({newest.snapshot}) is flipped")
        lines = [TimelineEntry(0.0, "drill", f"fault injected: {fault}")]

        def undo() -> None:
            if not lost.exists():
                lost.write_bytes(saved)
            if state.get("flipped"):
                flip_byte(victim, offset, mask=0x08)
                state["flipped"] = False

        state = {"flipped": False}
        offset = victim.stat().st_size // 2
        self.undo.add(fault, f"restore {lost} (saved by the drill) and flip byte {offset} of {victim} back", undo)
        lost.unlink()
        flip_byte(victim, offset, mask=0x08)
        state["flipped"] = True
        injected = time.time()
        # the first verification that started after both faults were in place
        observed = self._wait(f"a restore-and-verify of {name} after the fault", lambda: self._first(
            mark, name, lambda d: d["action"] == "observe" and (d["detail"] or {}).get("started_at", 0) >= injected))
        self._wait(f"the pages of {name}", lambda: {"backup", "asset"} <= {
            (d["detail"] or {}).get("check_class") for d in self._since(mark, subject=name) if d["action"] == "page"})
        undo_at = time.time()
        lines.append(TimelineEntry(round(undo_at - mark.t0, 3), "drill", "fault undone: the lost file and the "
                                   "flipped byte put back"))
        undo()
        self.undo.done(fault)
        for cls in ("backup", "asset"):
            self._wait(f"the {cls} incident of {name} to resolve", functools.partial(
                self._incident, name, cls, since=mark.t0, state="resolved"))
        detail = observed["detail"] or {}
        measured = detail.get("rpo_s")
        point = detail.get("restore_point")
        truth = round(float(detail["checked_at"]) - expected.taken_at, 6) if detail.get("checked_at") else None
        exact = point == expected.snapshot and measured is not None and truth is not None and \
            abs(float(measured) - truth) < 1e-6
        failed = [f["snapshot"] for f in detail.get("failed") or ()]
        paged, page_resolved, pages = self._pages(mark, name, "backup")
        page_d = self._first(mark, name, lambda d: d["action"] == "page")
        problems = []
        if newest.snapshot not in failed:
            problems.append(f"the corrupted backup {newest.snapshot} was not reported as failing")
        if not exact:
            problems.append(f"RPO not exact: the sidecar found restore point {point} ({measured} s), the drill "
                            f"expected {expected.snapshot} ({truth} s)")
        if detail.get("live") != "fail":
            problems.append(f"the lost file {lost.name} of the live {asset.kind} was not reported")
        met = exact and measured is not None and float(measured) <= asset.rpo_seconds and not problems
        inc = self._incident(name, "backup", since=mark.t0)
        summary = (f"RPO {float(measured):.3f} s (target {asset.rpo_seconds:g} s): the newest verified restore point "
                   f"is {point}, exactly the backup before the corrupted {newest.snapshot}" if measured is not None
                   else "no verified restore point found")
        return ScenarioResult(
            key="5", slug=s.slug, title=_title("5", s), subject=name, fault=fault, target_name="training RPO",
            target_s=asset.rpo_seconds, measured_s=None if measured is None else float(measured),
            status="pass" if met else "fail", summary=summary,
            detected_s=_rel(observed["at"], mark.t0), paged_s=_rel(page_d["at"] if page_d else None, mark.t0),
            page_delivered_s=_round(paged), page_resolved_s=_round(page_resolved),
            resolved_s=_rel(inc.get("recovered_at") if inc else None, mark.t0),
            rpo={"measured_s": measured, "expected_s": truth, "restore_point": point,
                 "expected_restore_point": expected.snapshot, "exact": exact, "failed_backups": failed,
                 "restore_point_taken_at": expected.taken_at, "checked_at": detail.get("checked_at")},
            incident=inc, pages=pages, timeline=self._timeline(mark, name, lines), problems=tuple(problems))


_KINDS = {"server": ("readiness",), "integrity": ("files",), "golden": ("golden",), "device": ("device",)}


def _title(key: str, s: Scenario) -> str:
    return f"{s.title} (no known-good version left)" if key == "3b" else s.title


def _target_name(s: Scenario) -> str:
    return "training RPO" if s.domain == "training" else "serving RTO"


def _rel(at: float | None, t0: float) -> float | None:
    return None if at is None else round(float(at) - t0, 6)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _describe(d: dict[str, Any], seen_fail: set[str]) -> str | None:
    """A journal decision as a line of a scenario's timeline (None: not part of the story)."""
    action, kind, reason = d["action"], d.get("kind"), d["reason"]
    detail = d.get("detail") or {}
    status = detail.get("status")
    if action == "observe" and status in ("fail", "error") and kind not in seen_fail and kind != "standby":
        seen_fail.add(str(kind))
        return f"detected by the {kind} check: {reason.split(': ', 1)[-1][:160]}"
    if action == "observe" and status == "pass" and kind in seen_fail:
        seen_fail.discard(str(kind))
        return f"the {kind} check passes again"
    if action in ("confirm", "no-known-good", "rolled-back", "rollback-failed", "routed", "routed-back",
                  "route-failed", "verified", "not-verified", "resolve", "page", "stop"):
        return f"{action}: {reason[:220]}"
    return None


def run_drill(target: DrillTarget, keys: Sequence[str], *, say: Callable[[str], None] = lambda _m: None,
              undo_path: Path | None = None, probe: bool = True, config_path: str | None = None) -> DrillReport:
    """Run the scenarios ``keys`` against ``target`` (see the module docstring); the report says how each went."""
    from goldwatch.watchdog.recovery.probe import Prober

    started = time.time()
    t = time.perf_counter()
    drill = Drill(target, say=say, undo_path=undo_path)
    notes = []
    serving = any(k != "5" for k in keys)
    if probe and serving and target.client_url and target.probe_inputs is not None and target.answers:
        drill.prober = Prober(target.client_url, target.probe_inputs, target.answers, atol=target.tolerance[0],
                              rtol=target.tolerance[1])
        drill.prober.__enter__()
    elif serving:
        notes.append("the clients' view was not measured (no client_url, or no approved answers to judge by)")
    try:
        results = drill.run(keys)
    finally:
        problems = drill.undo.undo_all()
        if drill.prober is not None:
            drill.prober.stop()
    if problems:
        notes.append("faults that could not be undone: " + "; ".join(problems))
    return DrillReport(stack=target.name, started_at=started, duration_s=round(time.perf_counter() - t, 3),
                       results=tuple(results), config=config_path or "", notes=tuple(notes))
