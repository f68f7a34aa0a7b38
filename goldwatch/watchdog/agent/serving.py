"""Serving a goldwatch model with the agent inside: verify at load, load, watch -- independent of any server.

:class:`ServedModel` is what the MLServer runtime (:mod:`goldwatch.watchdog.agent.mlserver`) wraps, and what any
other Python server can hold. Loading

1. resolves the model path (following a registry ``current`` link) and finds its manifest: ``manifest`` if given;
   else, for a copy served by the goldwatch registry, the manifest the registry stored for that version (the copy's
   ``.goldwatch-pointer.json`` names it, and the served version); else ``<model>.manifest.json`` beside the model;
2. verifies the files against it -- a model whose files fail is refused with an
   :class:`~goldwatch.errors.ArtifactError` naming the file, tensor and byte range;
3. loads the model (a ``goldwatch-model.json`` directory for torch, an ``.onnx`` file, or a directory holding one);
4. starts the agent: for torch, :class:`~goldwatch.watchdog.agent.agent.ResidentAgent` on the module (``dtype``
   serves it converted, e.g. bf16 from an fp32 file, proven from the file at load); for ONNX, the golden probe
   (:mod:`goldwatch.watchdog.agent.probe`) when ``golden`` is set;
5. with ``observe = true``, an :class:`~goldwatch.watchdog.agent.observer.HttpObserver`: every batch
   :meth:`ServedModel.predict` serves (goldwatch's probes excepted) goes to the sidecar's live drift.

Options (:class:`ServingOptions`) are the ``[agent]`` section of goldwatch.toml plus the per-model keys below;
MLServer passes them as ``parameters.extra.goldwatch`` in ``model-settings.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError

from goldwatch.checks import Check
from goldwatch.config import AgentConfig, load_config
from goldwatch.errors import ArtifactError, ConfigError
from goldwatch.integrity.manifest import ArtifactManifest
from goldwatch.logs import get_logger
from goldwatch.runtimes.base import DESCRIPTOR_NAME, Runtime
from goldwatch.runtimes.factory import load_model
from goldwatch.watchdog.agent.agent import ResidentAgent, verify_file
from goldwatch.watchdog.agent.observer import HttpObserver
from goldwatch.watchdog.agent.periodic import PeriodicAgent, agent_source
from goldwatch.watchdog.agent.probe import ProbeAgent
from goldwatch.watchdog.agent.reporter import HttpReporter, Reporter
from goldwatch.watchdog.agent.results import Evidence

__all__ = ["ServedArtifact", "ServedModel", "ServingOptions", "resolve_served", "serving_options"]

log = get_logger(__name__)

_POINTER_MARKER = ".goldwatch-pointer.json"  # written beside a registry-served copy (watchdog.registry.pointer)


class ServingOptions(AgentConfig):
    """``[agent]`` plus what one served model needs."""

    manifest: Path | None = Field(None, description="the model's manifest; default: the registry's, or beside it")
    golden: Path | None = Field(None, description="ONNX: the golden set the probe replays")
    golden_digest: str | None = Field(None, description="ONNX: pin the golden set (sha256:<hex>)")
    device: str = Field("cpu", description="cpu, cuda or cuda:N")
    dtype: Literal["bfloat16", "float16"] | None = Field(None, description="torch: serve converted to this dtype")
    version: str | None = Field(None, description="the served version, when the registry does not say")
    trusted_factories: list[str] = Field([], description="extra module prefixes a goldwatch-model.json may name")
    watch: bool = Field(True, description="false: verify at load only, run no agent")


def serving_options(extra: Mapping[str, Any] | None, *, where: str) -> ServingOptions:
    """Options from goldwatch.toml's ``[agent]`` (``$GOLDWATCH_CONFIG`` or ./goldwatch.toml) overridden by ``extra``."""
    base = load_config(os.environ.get("GOLDWATCH_CONFIG") or None).agent.model_dump(exclude_unset=False)
    try:
        return ServingOptions.model_validate({**base, **dict(extra or {})})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(problems, where=where, hint="see the agent options in docs/agent.md") from None


@dataclasses.dataclass(frozen=True)
class ServedArtifact:
    """The model path actually served (links resolved), its manifest, and the version when known."""

    path: Path
    manifest: Path
    version: str | None
    label: str | None = None


def resolve_served(uri: str | os.PathLike[str], *, manifest: str | os.PathLike[str] | None = None,
                   version: str | None = None) -> ServedArtifact:
    """Find what ``uri`` serves and the manifest to verify it with (see the module docstring)."""
    path = Path(uri)
    if not path.exists():
        raise ArtifactError("the model path does not exist", where=str(uri),
                            hint="point parameters.uri at a goldwatch model directory or an .onnx file")
    path = path.resolve()
    label = None
    marker = path.parent / _POINTER_MARKER
    found: Path | None = Path(manifest) if manifest is not None else None
    if marker.is_file():
        try:
            entry = json.loads(marker.read_text())
            source, label = Path(entry["source"]), str(entry.get("label") or "") or None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"unreadable registry pointer record ({exc})", where=str(marker)) from None
        if found is None:
            # the registry's store: <root>/trees/<tree digest>/<artifact>, manifest at <root>/manifests/<tree>.json
            found = source.parent.parent.parent / "manifests" / f"{source.parent.name}.json"
    if found is None:
        found = path.with_suffix(".manifest.json") if path.is_file() else path.parent / f"{path.name}.manifest.json"
    if not found.is_file():
        raise ArtifactError(
            f"no manifest for the model (looked for {found})", where=str(path),
            hint="create one with `goldwatch fingerprint`, set the manifest option, or serve the model through the "
            "goldwatch registry",
        )
    if version is None and label:
        version = label.rpartition(":")[2] or None
    return ServedArtifact(path=path, manifest=found, version=version, label=label)


def _onnx_file(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() == ".onnx" else None
    found = sorted(path.glob("*.onnx"))
    if len(found) > 1:
        raise ArtifactError(f"the model directory holds {len(found)} .onnx files", where=str(path),
                            hint="keep one model per directory")
    return found[0] if found else None


class ServedModel:
    """A loaded, verified model and its agent; :meth:`predict` runs it, :meth:`close` stops everything."""

    def __init__(self, name: str, runtime: Runtime, artifact: ServedArtifact, agent: PeriodicAgent | None,
                 reporter: Reporter | None, observer: HttpObserver | None = None) -> None:
        self.name = name
        self.runtime = runtime
        self.artifact = artifact
        self.agent = agent
        self.reporter = reporter
        self.observer = observer

    @classmethod
    def load(cls, uri: str | os.PathLike[str], *, name: str, options: ServingOptions,
             metrics_registry: Any = None, start: bool = True) -> ServedModel:
        served = resolve_served(uri, manifest=options.manifest, version=options.version)
        manifest = ArtifactManifest.load(served.manifest)
        verify_file(served.path, manifest)
        onnx = _onnx_file(served.path)
        if onnx is None and not (served.path / DESCRIPTOR_NAME).is_file():
            raise ArtifactError(f"neither a {DESCRIPTOR_NAME} directory nor an ONNX model", where=str(served.path),
                                hint="serve a goldwatch model directory (torch) or an .onnx file")
        if options.observe and not options.sidecar_url:
            raise ConfigError("observe sends served rows to the sidecar, and no sidecar_url is set",
                              where="agent.observe", hint="set agent.sidecar_url, or observe = false")
        reporter: Reporter | None = None
        observer: HttpObserver | None = None
        if options.sidecar_url and options.watch:
            reporter = HttpReporter(options.sidecar_url, token_env=options.token_env, token_file=options.token_file,
                                    timeout_s=options.report_timeout_s, retries=options.report_retries,
                                    metrics_registry=metrics_registry)
        runtime: Runtime | None = None
        try:
            if options.observe and options.sidecar_url:
                observer = HttpObserver(options.sidecar_url, name, token_env=options.token_env,
                                        token_file=options.token_file, timeout_s=options.report_timeout_s,
                                        max_rows=options.observe_max_rows, flush_s=options.observe_flush_s,
                                        metrics_registry=metrics_registry)
            runtime = load_model(onnx or served.path, device=options.device,
                                 trusted_factories=options.trusted_factories)
            agent = cls._agent(runtime, name, served, manifest, options, reporter, metrics_registry)
        except BaseException:
            if runtime is not None:
                runtime.close()
            if reporter is not None:
                reporter.close(timeout_s=0.0)
            if observer is not None:
                observer.close(timeout_s=0.0)
            raise
        model = cls(name, runtime, served, agent, reporter, observer)
        if agent is not None and start:
            agent.start()
        elif agent is None and reporter is not None:
            reporter.report(Evidence(model=name, source=agent_source(), version=served.version,
                                     interval_s=options.interval_s, checks=(Check(
                                         name="resident:golden_probe", status="skip",
                                         summary="ONNX Runtime does not expose resident initializers and no golden set "
                                         "is configured for a probe: only the file was verified at load"),)))
        return model

    @staticmethod
    def _agent(runtime: Runtime, name: str, served: ServedArtifact, manifest: ArtifactManifest,
               options: ServingOptions, reporter: Reporter | None, metrics_registry: Any) -> PeriodicAgent | None:
        module = getattr(runtime, "module", None)
        if options.dtype is not None:
            if runtime.kind == "onnx":
                raise ConfigError("dtype converts torch models; an ONNX model's dtypes are fixed in its graph",
                                  where="dtype", hint="remove the dtype option, or export the model in that dtype")
            from goldwatch.watchdog.agent._torch_cast import serve_converted

            module = serve_converted(runtime, options.dtype)
        if not options.watch:
            return None
        if runtime.kind == "onnx":
            if options.golden is None:
                log.warning("%s: ONNX Runtime does not expose resident initializers and no golden set is configured:"
                            " only the file was verified at load", name)
                return None
            return ProbeAgent(runtime, golden=options.golden, golden_digest=options.golden_digest, model=name,
                              interval_s=options.interval_s, samples=options.probe_samples, version=served.version,
                              reporter=reporter, metrics_registry=metrics_registry)
        return ResidentAgent(
            module, manifest=manifest, model=name, interval_s=options.interval_s, duty_cycle=options.duty_cycle,
            artifact=served.path, file_verified=True, version=served.version, reporter=reporter,
            attest=options.attest, exclude=options.exclude, slice_bytes=options.slice_mib << 20,
            gpu_slice_bytes=options.gpu_slice_mib << 20, metrics_registry=metrics_registry,
        )

    @property
    def module(self) -> Any:
        """The torch module that serves (the one the agent watches, when it runs); None for ONNX."""
        if isinstance(self.agent, ResidentAgent):
            return self.agent.module
        return getattr(self.runtime, "module", None)

    def device_status(self) -> tuple[str, bool, str]:
        """(device, usable, why not): a CUDA device is exercised (a tiny kernel, synchronised), so a lost GPU or a
        failed driver shows here and not only as failed requests."""
        device = str(self.runtime.device)
        if not device.startswith("cuda"):
            return device, True, ""
        try:
            import torch

            probe = torch.ones(1, device=device)
            probe.add_(1)
            torch.cuda.synchronize(device)
        except Exception as exc:  # any CUDA failure means the device cannot serve; the message says which
            return device, False, f"{type(exc).__name__}: {exc}"
        return device, True, ""

    def predict(self, inputs: Mapping[str, np.ndarray], *, probe: bool = False) -> dict[str, np.ndarray]:
        """Run one batch; inputs are cast to the dtypes the signature declares (JSON carries float64 numbers).
        With an observer, the batch goes to live drift unless ``probe`` (goldwatch's own golden replay) is set."""
        feed = {}
        for name, value in inputs.items():
            array = np.asarray(value)
            spec = next((t for t in self.runtime.signature.inputs if t.name == name), None)
            if spec is not None and spec.dtype and array.dtype != np.dtype(spec.dtype):
                array = array.astype(spec.dtype)
            feed[name] = array
        outputs = self.runtime.run(feed)
        if self.observer is not None and not probe:
            self.observer.observe(feed, outputs, version=self.artifact.version)
        return outputs

    def close(self) -> None:
        if self.observer is not None:
            self.observer.close(timeout_s=2.0)
        if self.agent is not None:
            self.agent.stop()
        elif self.reporter is not None:
            self.reporter.close(timeout_s=2.0)
        self.runtime.close()
