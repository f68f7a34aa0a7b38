"""``goldwatch demo sidecar``: the sidecar healing a corrupted served model, start to finish, in under a minute.

1. Two releases of the seeded example classifier are trained (no download), each with its golden set, added to a
   registry and promoted: version 2 is served through the ``current`` pointer.
2. A real MLServer serves it (goldwatch's ONNX runtime for MLServer), a local stand-in for PagerDuty's Events API
   (the strict one the tests use) takes the pages, and ``goldwatch serve`` watches the model.
3. One bit of a weight in the *served file* is flipped. The timeline is printed as it happens, from the sidecar's
   journal: detected (file, tensor, block), paged, rolled back to version 1 (re-verified), MLServer reloaded, golden
   replay passing again, incident resolved -- with the time to detect and the time to recover.

Everything is written under the demo folder, including the ``goldwatch.toml`` the sidecar ran with.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from goldwatch.errors import InvalidInputError

__all__ = ["SidecarDemoResult", "TimelineEntry", "run_sidecar_demo"]

MARKER = ".goldwatch-demo"
MODEL = "fraud"


@dataclasses.dataclass(frozen=True)
class TimelineEntry:
    """One line of the timeline: seconds since the bit flip, and what happened."""

    t: float
    what: str


@dataclasses.dataclass(frozen=True)
class SidecarDemoResult:
    out: Path
    config: Path
    flipped: str
    timeline: tuple[TimelineEntry, ...]
    incident: dict[str, Any] | None
    pagerduty: tuple[tuple[str, str], ...]
    ttd_s: float | None
    ttr_s: float | None
    exit_s: float
    commands: tuple[str, ...]

    @property
    def as_expected(self) -> bool:
        """Detected, rolled back, resolved; PagerDuty saw one incident triggered then resolved."""
        inc = self.incident or {}
        actions = [a for a, _key in self.pagerduty]
        keys = {k for _a, k in self.pagerduty}
        return (inc.get("state") == "resolved" and (inc.get("action") or {}).get("kind") == "rollback"
                and "trigger" in actions and actions[-1] == "resolve" and len(keys) == 1)


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise InvalidInputError("the folder exists and is not a goldwatch demo folder", where=str(out),
                                hint="pass --out NEW_FOLDER (the demo only overwrites its own folders)")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `goldwatch demo`; safe to delete\n")
    for name in ("model", "registry", "serving", "mlserver", "golden", "sidecar.sqlite", "alerts.sqlite",
                 "sidecar.sqlite-wal", "sidecar.sqlite-shm", "alerts.sqlite-wal", "alerts.sqlite-shm",
                 "sidecar.log"):
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _config(out: Path, *, port: int, model_url: str, serving: Path, files_interval_s: float) -> str:
    def q(value: Any) -> str:
        return json.dumps(str(value))

    return f"""# written by `goldwatch demo sidecar`: the sidecar as the demo ran it
[registry]
root = {q(out / "registry")}

[alerts]
outbox_path = {q(out / "alerts.sqlite")}
rto_seconds = 60
retry_base_s = 0.2
retry_max_delay_s = 2.0

[serve]
host = "127.0.0.1"
port = {port}
journal = {q(out / "sidecar.sqlite")}

[[serve.watch]]
name = {q(MODEL)}
url = {q(model_url)}
serving_dir = {q(serving)}
# short intervals so the demo is quick; the defaults are 30 s (files), 60 s (golden), 10 s (readiness)
[serve.watch.files]
interval_s = {files_interval_s}
[serve.watch.golden_replay]
interval_s = 2.0
[serve.watch.readiness]
interval_s = 1.0
"""


def _describe(d: dict[str, Any]) -> str | None:
    """One decision of the journal, as a line of the timeline (None: not part of the story)."""
    action, kind, reason = d["action"], d.get("kind"), d["reason"]
    detail = d.get("detail") or {}
    if action == "observe" and kind == "rollback_readiness" and detail.get("status") == "fail":
        return "rollback readiness: no verified version is left to roll back to (reported, never acted on)"
    if action == "observe" and detail.get("status") == "fail":
        return f"DETECTED by the {kind} check: {reason.split(': ', 1)[-1]}"
    if action == "observe" and kind == "golden" and detail.get("status") == "pass":
        return f"golden replay passes (version {detail.get('version')}): answers within the calibrated tolerances"
    if action == "observe" and kind == "files" and detail.get("status") == "pass":
        return f"served files verify against version {detail.get('version')}'s manifest"
    if action == "page":
        return f"paged on-call ({reason.split(':', 1)[0]}): incident opened in PagerDuty"
    if action == "rolled-back":
        phases = detail.get("phases") or {}
        order = ["select", "switch", "verify_after", "reload", "ready"]
        parts = ", ".join(f"{k} {phases[k] * 1000:.0f} ms"
                          for k in sorted(phases, key=lambda k: order.index(k) if k in order else len(order)))
        return f"ROLLED BACK {detail.get('from')} -> {detail.get('to')} ({parts}); MLServer reloaded and ready"
    if action in ("rollback-failed", "reload-failed"):
        return f"{action}: {reason}"
    if action == "resolve":
        return f"RESOLVED: {reason}"
    return None


def run_sidecar_demo(out: str | os.PathLike[str] = "goldwatch-demo/sidecar", *, seed: int = 0,
                     files_interval_s: float = 1.0, say: Callable[[str], None] = lambda _m: None,
                     on_event: Callable[[TimelineEntry], None] = lambda _e: None,
                     timeout_s: float = 45.0) -> SidecarDemoResult:
    """Run the demo under ``out`` (see the module docstring); ``on_event`` gets each timeline line as it happens."""
    from goldwatch._optional import require
    from goldwatch.examples import write_example
    from goldwatch.golden_sets import build_golden_set
    from goldwatch.runtimes.mlserver_testing import free_ports, start_mlserver, write_model_settings
    from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub
    from goldwatch.watchdog.gate.demo import corrupt_one_bit
    from goldwatch.watchdog.registry import Registry, Serving, make_pointer
    from goldwatch.watchdog.sidecar.process import start_sidecar

    require("starlette", purpose="the sidecar's HTTP API")
    require("uvicorn", purpose="the sidecar's HTTP API")
    root = Path(out).absolute()
    _prepare(root)
    say("training two releases of the example classifier and capturing a golden set for each...")
    registry_root, serving = root / "registry", root / "serving" / MODEL
    with Registry.open(registry_root) as reg:
        reg.attach(MODEL, Serving(make_pointer("current-link", serving)))
        for version, release_seed in (("1", seed), ("2", seed + 1)):
            art = write_example("tabular", root / "model" / version, seed=release_seed, formats=("onnx",))
            assert art.onnx is not None
            golden = root / "golden" / version
            build_golden_set(art.onnx, art.inputs, golden, labels=art.labels, repeats=2, overwrite=True)
            reg.add(MODEL, art.onnx, version=version, golden=[golden], actor="goldwatch-demo")
            reg.promote(MODEL, version, actor="goldwatch-demo", reason="demo release")
    say("starting MLServer with version 2, the PagerDuty stand-in and `goldwatch serve`...")
    repo = root / "mlserver"
    # the server reads the pointer (not a resolved path): a rollback switches it, a reload re-reads it
    write_model_settings(repo, MODEL, extra={"parameters": {"uri": str(serving / "current")}})
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    token = secrets.token_hex(16)
    routing_key = "D3m0" + secrets.token_hex(14)
    with start_mlserver(repo) as server, PagerDutyStub() as pagerduty:
        config = root / "goldwatch.toml"
        config.write_text(_config(root, port=port, model_url=server.model_url(MODEL), serving=serving,
                                  files_interval_s=files_interval_s))
        env = {"GOLDWATCH_SERVE_TOKEN": token, "GOLDWATCH_PAGERDUTY_ROUTING_KEY": routing_key,
               "GOLDWATCH_PAGERDUTY_EVENTS_URL": pagerduty.url}
        sidecar = start_sidecar(config, url=url, env=env, token=token, log_path=root / "sidecar.log")
        try:
            after = max((d["id"] for d in sidecar.decisions()), default=0)
            served = Path(os.path.realpath(serving / "current"))
            say(f"the sidecar is ready (first round of checks passed); serving {served.relative_to(root)}")
            flipped = corrupt_one_bit(served, served)
            t0 = time.time()
            timeline = [TimelineEntry(0.0, f"one bit flipped in the served file: {flipped}")]
            on_event(timeline[0])
            incident = None
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                for d in sidecar.decisions(after):
                    after = d["id"]
                    line = _describe(d)
                    if line is not None and d.get("model") == MODEL:
                        entry = TimelineEntry(round(d["at"] - t0, 3), line)
                        timeline.append(entry)
                        on_event(entry)
                found = [i for i in sidecar.incidents() if i["check_class"] == "integrity"]
                incident = found[0] if found else None
                if incident is not None and incident["state"] == "resolved" and \
                        any("RESOLVED" in e.what for e in timeline):
                    break
                time.sleep(0.1)
            time.sleep(0.5)  # the resolve's delivery to the PagerDuty stand-in
        finally:
            exit_s = sidecar.terminate()
    detected = next((e.t for e in timeline if e.what.startswith("DETECTED")), None)
    pages = tuple((str(r.body.get("event_action", "change")), str(r.body.get("dedup_key")))
                  for r in pagerduty.accepted if isinstance(r.body, dict) and "event_action" in r.body)
    commands = (
        f"goldwatch --config {config} serve",
        f"goldwatch status --url {url}",
        f"goldwatch registry --registry-root {registry_root} list {MODEL}",
    )
    return SidecarDemoResult(
        out=root, config=config, flipped=flipped, timeline=tuple(timeline), incident=incident, pagerduty=pages,
        ttd_s=detected, ttr_s=(incident or {}).get("ttr_s"), exit_s=exit_s, commands=commands,
    )

