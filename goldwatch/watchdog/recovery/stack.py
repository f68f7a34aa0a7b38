"""The local drill stack: everything a disaster-recovery drill needs, on 127.0.0.1, built and torn down here.

``goldwatch drill all --local-stack`` (and the tests and the benchmark) run against it. It is the stack
``goldwatch demo`` starts, grown to the five scenarios:

* two MLServer processes: the **primary** (the "GPU" server: goldwatch's fault-injecting MLServer runtime with
  ``GOLDWATCH_FAULT_INJECTION=1``, serving the registry's ``current`` version of ``fraud``) and a **local CPU
  server** serving the **fallback** (``fraud-small``: an older release, with its own golden set) and the **CPU
  variant** (``fraud-cpu``: the served version on the CPU, proven by the served version's golden set);
* a registry with two releases of the example classifier, each with its golden set (version 2 served);
* a gateway (:mod:`.gateway`) in front of the model: what clients call, and what the sidecar's route hook moves;
* the strict PagerDuty stand-in, and ``goldwatch serve`` watching the model and the training asset;
* a training asset (the example's training data, with its manifest) and two verified backups of it.

Every file is written under one folder (marked as the drill's own: an existing folder that is not one is refused),
including the ``goldwatch.toml`` the sidecar runs with, which names this stack as a drill target. Nothing outside
it is touched, and every process it starts is stopped when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from goldwatch import progress
from goldwatch.errors import InvalidInputError

__all__ = ["LocalStack", "start_local_stack"]

MARKER = ".goldwatch-drill-stack"
MODEL = "fraud"
ASSET = "fraud-training"
FAULTS = "goldwatch.watchdog.agent.mlserver_faults.FaultInjectingModel"
SERVING = "goldwatch.watchdog.agent.mlserver.GoldwatchModel"
GOLDEN_SAMPLES = 64


@dataclasses.dataclass
class LocalStack:
    """The running stack (see the module docstring); the drill reaches it through these fields."""

    root: Path
    config_path: Path
    primary: Any  # MLServerProcess
    local: Any  # MLServerProcess
    gateway: Any  # Gateway
    pagerduty: Any  # PagerDutyStub
    sidecar: Any  # SidecarProcess
    token: str
    sidecar_env: dict[str, str]
    primary_env: dict[str, str]
    backups: list[Any]  # the asset's backups taken at start (oldest first)
    probe_inputs: dict[str, np.ndarray]
    answers: dict[str, dict[str, np.ndarray]]  # approved model -> its outputs for probe_inputs
    device: str
    started_s: float
    mlserver_start_s: float  # one MLServer start from cold: the anchor for a person restarting the server

    @property
    def name(self) -> str:
        return "local"

    @property
    def model(self) -> str:
        return MODEL

    @property
    def asset(self) -> str:
        return ASSET

    def stop_server(self) -> None:
        """Kill the primary MLServer (SIGKILL to its process group): the server is gone, as when its node dies."""
        proc = self.primary.process
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def start_server(self) -> None:
        """Start the primary again on the same ports (what its deployment controller would do)."""
        from goldwatch.runtimes.mlserver_testing import start_mlserver

        self.primary = start_mlserver(
            self.primary.repository, env=self.primary_env, timeout=120.0,
            settings={"http_port": self.primary.http_port, "grpc_port": self.primary.grpc_port,
                      "metrics_port": self.primary.metrics_port})

    def target(self) -> Any:
        """This stack as a :class:`~.drill.DrillTarget` (the local stack is a drill target by construction)."""
        from goldwatch.config import load_config
        from goldwatch.watchdog.recovery.drill import DrillTarget

        return DrillTarget(name=self.name, config=load_config(self.config_path), sidecar=self.sidecar,
                           model=MODEL, asset=ASSET, stop_server=self.stop_server, start_server=self.start_server,
                           stop_how="SIGKILL to the primary MLServer", pagerduty=self.pagerduty,
                           client_url=self.gateway.model_url(MODEL), probe_inputs=self.probe_inputs,
                           answers=self.answers)

    def restart_sidecar(self) -> None:
        """Stop ``goldwatch serve`` (SIGTERM) and start it again with the same config: what a pod restart does."""
        from goldwatch.watchdog.sidecar.process import start_sidecar

        self.sidecar.terminate()
        self.sidecar = start_sidecar(self.config_path, url=self.sidecar.url, env=self.sidecar_env, token=self.token,
                                     log_path=self.root / "sidecar.log", timeout=120.0)

    def close(self) -> None:
        for step in (self.sidecar.terminate, self.gateway.close, self.primary.stop, self.local.stop,
                     self.pagerduty.close):
            with contextlib.suppress(Exception):
                step()


def _prepare(root: Path) -> None:
    if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
        raise InvalidInputError("the folder exists and is not a goldwatch drill stack folder", where=str(root),
                                hint="pass a new folder (the drill only overwrites its own folders)")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_text("written by `goldwatch drill --local-stack`; safe to delete\n")


def _q(value: Any) -> str:
    return json.dumps(str(value))


def _config(root: Path, *, port: int, primary_url: str, fallback_url: str, cpu_url: str, hook: str,
            fallback_golden: Path, client_url: str, runbooks: Path) -> str:
    return f"""# written by `goldwatch drill --local-stack`: the drill's own stack (a drill target by name)
[registry]
root = {_q(root / "registry")}
ready_timeout_s = 30

[alerts]
outbox_path = {_q(root / "alerts.sqlite")}
runbook_url = {_q(runbooks.as_uri())}
rto_seconds = 60
retry_base_s = 0.1
retry_max_delay_s = 1.0

[serve]
host = "127.0.0.1"
port = {port}
journal = {_q(root / "sidecar.sqlite")}
jitter = 0.05

[[serve.watch]]
name = {_q(MODEL)}
url = {_q(primary_url)}
serving_dir = {_q(root / "serving" / MODEL)}
rto_seconds = 2                      # serving RTO of a rollback (scenarios 2 and 3)
server_down_grace_s = 1.0            # a drill stack: production keeps this above a pod's termination grace
server_start_grace_s = 60.0
max_rollbacks_per_hour = 10          # the drill rolls back several times an hour on purpose
escalation = "the ML platform on-call (PagerDuty service 'ml-platform'), then #fraud-models"
[serve.watch.files]
interval_s = 0.25
sha256_interval_s = 0
[serve.watch.golden_replay]
interval_s = 0.4
batch_size = 64
[serve.watch.readiness]
interval_s = 0.25
timeout_s = 1.0
[serve.watch.version]
interval_s = 1.0
timeout_s = 1.0
[serve.watch.device]
interval_s = 0.25
timeout_s = 1.0
[serve.watch.rollback_readiness]
interval_s = 5.0
[serve.watch.standby]
interval_s = 10.0
timeout_s = 20.0
[serve.watch.fallback]               # scenario 1 and 3 without a known-good version
url = {_q(fallback_url)}
golden = [{_q(fallback_golden)}]
rto_seconds = 5
[serve.watch.cpu_variant]            # scenario 4: proven by the served version's (cross-device) golden set
url = {_q(cpu_url)}
rto_seconds = 5
[serve.watch.route]
kind = "http"
url = {_q(hook)}
route_back_after_s = 0.5

[recovery]
escalation = "the ML platform on-call (PagerDuty service 'ml-platform')"
scratch = {_q(root / "restore-scratch")}
[[recovery.assets]]
name = {_q(ASSET)}
kind = "dataset"
path = {_q(root / "data" / "training")}
manifest = {_q(root / "data" / "training.manifest.json")}
backups = {_q(root / "backups" / ASSET)}
rpo_seconds = 600                    # training RPO: ten minutes of training data
verify_interval_s = 0.5
timeout_s = 60
escalation = "the data platform on-call"

[drill]
stack = "local"
drill_target = true
sidecar_url = "http://127.0.0.1:{port}"
model = {_q(MODEL)}
asset = {_q(ASSET)}
client_url = {_q(client_url)}
scenario_timeout_s = 60
"""


def _model_dir(out: Path, *, seed: int) -> tuple[Path, Path]:
    """A trained example classifier as a goldwatch model directory (torch) and its sample inputs."""
    from goldwatch.examples import write_example

    art = write_example("tabular", out, seed=seed, formats=("state_dict",))
    return art.models["state_dict"], art.inputs


def _answers(model_dir: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from goldwatch.runtimes import load_model

    runtime = load_model(model_dir)
    try:
        return {k: np.asarray(v) for k, v in runtime.run(inputs).items()}
    finally:
        runtime.close()


@contextlib.contextmanager
def start_local_stack(out: str | os.PathLike[str], *, seed: int = 0, device: str = "cpu",
                      say: Callable[[str], None] = lambda _m: None) -> Iterator[LocalStack]:
    """Build and start the local drill stack under ``out``; stop everything when the block ends."""
    from goldwatch._optional import require
    from goldwatch.config import load_config
    from goldwatch.golden_sets import build_golden_set
    from goldwatch.integrity import build_manifest
    from goldwatch.runtimes.mlserver_testing import free_ports, start_mlserver, write_model_settings
    from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub
    from goldwatch.watchdog.recovery.assets import register, take_backup
    from goldwatch.watchdog.recovery.gateway import Gateway
    from goldwatch.watchdog.registry import Registry, Serving, make_pointer
    from goldwatch.watchdog.sidecar.process import start_sidecar

    require("starlette", purpose="the sidecar's HTTP API")
    require("uvicorn", purpose="the sidecar's HTTP API")
    t_start = time.perf_counter()
    root = Path(out).absolute()
    _prepare(root)
    say("training two releases of the example classifier and an older fallback, with a golden set each...")
    releases: dict[str, Path] = {}
    golden: dict[str, Path] = {}
    inputs_path = None
    with progress.task("drill stack: models and golden sets", total=3, unit="models"):
        for name, release_seed in (("1", seed), ("2", seed + 1), ("fallback", seed + 7)):
            with progress.isolated():  # the samples and bytes of building one are not models
                model_dir, inputs_path = _model_dir(root / "models" / name, seed=release_seed)
                with np.load(inputs_path, allow_pickle=False) as data:
                    frozen = {k: np.asarray(data[k])[:GOLDEN_SAMPLES] for k in data.files}
                golden[name] = root / "golden" / name
                build_golden_set(model_dir, frozen, golden[name], repeats=2, overwrite=True)
                releases[name] = model_dir
            progress.advance(1)
    # the fallback is served outside the registry: its manifest sits beside it, where the runtime looks
    fallback = releases["fallback"]
    build_manifest(fallback).save(fallback.parent / f"{fallback.name}.manifest.json")
    serving = root / "serving" / MODEL
    with Registry.open(root / "registry") as reg:
        reg.attach(MODEL, Serving(make_pointer("current-link", serving)))
        for version in ("1", "2"):
            reg.add(MODEL, releases[version], version=version, golden=[golden[version]], actor="goldwatch-drill")
            reg.promote(MODEL, version, actor="goldwatch-drill", reason="drill stack release")
    say("registering the training data as an asset and taking two verified backups of it...")
    assert inputs_path is not None
    data_dir = root / "data" / "training"
    data_dir.mkdir(parents=True)
    with np.load(inputs_path, allow_pickle=False) as data:
        x = np.asarray(data["x"])
    for part in range(4):
        np.save(data_dir / f"part-{part}.npy", x[part::4], allow_pickle=False)
    (data_dir / "schema.json").write_text(json.dumps({"features": int(x.shape[1]), "rows": int(x.shape[0])}))
    token = secrets.token_hex(16)
    routing_key = "Dr1ll" + secrets.token_hex(13) + "x"
    env_primary = {"GOLDWATCH_FAULT_INJECTION": "1"}
    with contextlib.ExitStack() as stack:
        say("starting the primary MLServer, the local CPU MLServer, the gateway, the PagerDuty stand-in...")
        repo_primary, repo_local = root / "mlserver-primary", root / "mlserver-local"
        write_model_settings(repo_primary, MODEL, implementation=FAULTS, extra={"parameters": {
            "uri": str(serving / "current"), "extra": {"goldwatch": {"watch": False, "device": device}}}})
        write_model_settings(repo_local, f"{MODEL}-small", implementation=SERVING, extra={"parameters": {
            "uri": str(releases["fallback"]), "extra": {"goldwatch": {"watch": False}}}})
        write_model_settings(repo_local, f"{MODEL}-cpu", implementation=SERVING, extra={"parameters": {
            "uri": str(serving / "current"), "extra": {"goldwatch": {"watch": False, "device": "cpu"}}}})
        started: dict[str, Any] = {}
        errors: list[BaseException] = []

        def boot(key: str, repo: Path, env: dict[str, str]) -> None:
            t0 = time.perf_counter()
            try:
                started[key] = start_mlserver(repo, env=env, timeout=120.0)
                started[f"{key}_s"] = time.perf_counter() - t0
            except BaseException as exc:  # reported below, after both attempts
                errors.append(exc)

        threads = [threading.Thread(target=boot, args=("primary", repo_primary, env_primary)),
                   threading.Thread(target=boot, args=("local", repo_local, {}))]
        with progress.task("drill stack: starting two MLServer processes"):
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        for key in ("primary", "local"):
            if key in started:
                stack.callback(started[key].stop)
        if errors:
            raise errors[0]
        primary, local = started["primary"], started["local"]
        gateway = stack.enter_context(Gateway({MODEL: primary.model_url(MODEL)}))
        pagerduty = stack.enter_context(PagerDutyStub())
        # the asset: its manifest, then two backups (the second a moment later: two distinct restore points)
        config_path = root / "goldwatch.toml"
        port = free_ports(1)[0]
        config_path.write_text(_config(
            root, port=port, primary_url=primary.model_url(MODEL), fallback_url=local.model_url(f"{MODEL}-small"),
            cpu_url=local.model_url(f"{MODEL}-cpu"), hook=gateway.route_hook_url,
            fallback_golden=golden["fallback"], client_url=gateway.model_url(MODEL),
            runbooks=root / "runbooks" / "README.md"))
        config = load_config(config_path)
        asset = config.recovery.assets[0]
        register(asset)
        backups = [take_backup(asset)]
        time.sleep(0.05)
        backups.append(take_backup(asset))
        holder: list[LocalStack] = []
        # a drill may have restarted the primary: stop whichever one runs at the end (after the sidecar: a sidecar
        # still watching would see its server go)
        stack.callback(lambda: holder[0].primary.stop() if holder else None)
        say("starting `goldwatch serve` (the sidecar) and waiting for its first round of checks...")
        env = {"GOLDWATCH_SERVE_TOKEN": token, "GOLDWATCH_PAGERDUTY_ROUTING_KEY": routing_key,
               "GOLDWATCH_PAGERDUTY_EVENTS_URL": pagerduty.url}
        with progress.task("drill stack: starting goldwatch serve"):
            sidecar = start_sidecar(config_path, url=f"http://127.0.0.1:{port}", env=env, token=token,
                                    log_path=root / "sidecar.log", timeout=120.0)
        stack.callback(lambda: holder[0].sidecar.terminate() if holder else sidecar.terminate())
        probe_inputs = {"x": frozen["x"][:4]}
        answers = {name: _answers(releases[name], probe_inputs) for name in ("1", "2", "fallback")}
        result = LocalStack(
            root=root, config_path=config_path, primary=primary, local=local, gateway=gateway, pagerduty=pagerduty,
            sidecar=sidecar, token=token, sidecar_env=env, primary_env=env_primary, backups=backups,
            probe_inputs=probe_inputs, answers=answers, device=device, started_s=time.perf_counter() - t_start,
            mlserver_start_s=float(started.get("primary_s") or 0.0))
        holder.append(result)
        yield result
