"""``goldwatch.toml``: one TOML file validated into typed, frozen objects.

Every section has defaults, so an empty file (or no file) is a valid configuration. Validation reports *all*
problems at once, each with its key path, in one :class:`~goldwatch.errors.ConfigError` naming the file.

Secrets (PagerDuty routing keys, webhook URLs with tokens, bearer tokens) never live in the TOML: the file names
an environment variable (``*_env``) or a file (``*_file``) that holds them, and :func:`resolve_secret` reads it
at the point of use. A secret-looking key written directly in the file is refused.

>>> cfg = parse_config('[detectors]\\np_threshold = 0.01\\n', source="inline")
>>> cfg.detectors.p_threshold, cfg.detectors.correction
(0.01, 'bonferroni')
>>> parse_config('[detectors]\\np_threshold = "low"\\nwindow = 3\\n', source="goldwatch.toml")
Traceback (most recent call last):
...
goldwatch.errors.ConfigError: goldwatch.toml: 2 problems: detectors.p_threshold: Input should be a valid number, ...
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from goldwatch.errors import ConfigError
from goldwatch.logs import mask_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "AgentConfig",
    "AlertsConfig",
    "AlternateConfig",
    "AssetConfig",
    "DaskConfig",
    "DetectorsConfig",
    "DrillConfig",
    "FallbackConfig",
    "GateConfig",
    "GoldenConfig",
    "GoldwatchConfig",
    "LiveColumnConfig",
    "LiveDriftConfig",
    "LiveDriftModelConfig",
    "LiveDriftSection",
    "LoggingConfig",
    "PagerDutyConfig",
    "RecoveryConfig",
    "RegistryConfig",
    "RouteConfig",
    "RuntimesConfig",
    "ServeCheckConfig",
    "ServeConfig",
    "ServeFilesCheck",
    "ServeGoldenCheck",
    "ServeWatchConfig",
    "WebhookConfig",
    "load_config",
    "parse_config",
    "resolve_secret",
]

DEFAULT_CONFIG_NAME = "goldwatch.toml"

# Key names that would hold a secret if written directly; the file must name an env var or a file instead.
_SECRET_WORDS = ("routing_key", "token", "password", "secret", "api_key")


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, values are frozen after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level (--log-level wins)")
    format: Literal["text", "json"] = Field(
        "text", description="text for people, json (one object per line) for log shippers (--log-format wins)"
    )


class DetectorsConfig(_Section):
    """Defaults for drift tests (see :mod:`goldwatch.detectors`)."""

    # the built-in names of goldwatch.detectors.available_detectors() (a test keeps the two lists equal)
    test: Literal["ks", "cvm", "anderson", "chi2", "wasserstein", "psi", "js", "hellinger", "kl"] = Field(
        "ks", description="detector name from the detector registry, e.g. 'ks', 'psi'"
    )
    p_threshold: float = Field(0.05, gt=0, lt=1, description="family-wise (or FDR) significance level")
    correction: Literal["bonferroni", "bh", "none"] = Field(
        "bonferroni", description="multiple-testing correction across features: bonferroni (family-wise), bh "
        "(Benjamini-Hochberg, false discovery rate) or none"
    )
    min_effect: float | None = Field(
        None, ge=0, description="effect-size floor: a feature drifts only if its statistic is also at least this"
    )
    auto_min_effect: bool = Field(
        False, description="without min_effect, use the detector's recommended floor (KS 0.1, CvM 0.5, Anderson 5)"
    )
    threshold: float | None = Field(None, gt=0, description="distance detectors: drift above this (default per test)")
    nan_policy: Literal["raise", "omit"] = Field(
        "raise", description="NaN/inf in the data: refuse it (raise) or drop it per feature (omit)"
    )


class DaskConfig(_Section):
    """Where distributed work runs (``goldwatch drift --dask``, ``goldwatch fingerprint --dask``).

    ``address``: a scheduler (``tcp://HOST:PORT``) or ``local:N`` (N worker processes on 127.0.0.1, started for
    the command); ``$GOLDWATCH_DASK`` and the ``--dask`` flag win over it. Unset: in memory.
    """

    address: str | None = Field(None, pattern=r"^\S+$", description="tcp://HOST:PORT of a Dask scheduler, or local:N")
    local_memory_limit: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)?\s*([kKmMgGtT]i?[bB]?|[bB])?$",
                                           description="memory limit per local worker, e.g. '600MB' (default: auto)")
    connect_timeout_s: float = Field(10.0, gt=0, le=600, description="give up connecting to a scheduler after this")
    strategy: Literal["auto", "broadcast", "feature-blocks", "ranges"] = Field(
        "auto", description="drift: how exact counts are gathered (auto picks the cheapest that fits)")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("local:"):
            count = value.removeprefix("local:")
            if not (count.isdigit() and int(count) >= 1):
                raise ValueError("expected local:N with N >= 1 worker processes, e.g. local:2")
        return value


class GoldenConfig(_Section):
    """Defaults for golden-set capture and replay."""

    repeats: int = Field(5, ge=1, le=1000, description="runs per device when calibrating tolerances")
    safety_factor: float = Field(4.0, ge=1.0, description="tolerance = measured noise x safety factor (+ floor)")
    min_top1_agreement: float = Field(
        1.0, ge=0, le=1, description="class scores: fraction of golden inputs whose top-1 class must stay the same"
    )
    min_cosine: float = Field(
        0.9999, ge=-1, le=1, description="embeddings: smallest cosine similarity to the golden answer, per sample"
    )
    drift_alpha: float = Field(
        0.01, ge=0, lt=1, description="output-distribution test level per replay (Bonferroni); 0 disables it"
    )
    drift_min_effect: float = Field(
        0.01, ge=0, description="output drift counts only beyond this fraction of the output's scale (its std)"
    )
    batch_size: int = Field(0, ge=0, description="samples per inference call; 0: all at once")


class RegistryConfig(_Section):
    """Where the registry keeps its database and artifact store, and how the server is told to reload."""

    root: Path = Field(
        Path(".goldwatch"), description="registry directory: its database and content-addressed artifact store "
        "($GOLDWATCH_REGISTRY_ROOT and --registry-root win)"
    )
    keep_known_good: int = Field(3, ge=1, description="retention: known-good versions kept per model")
    layout: Literal["current-link", "numbered", "mlflow-alias"] = Field(
        "current-link",
        description="serving pointer: a 'current' symlink, Triton numbered version dirs, or an MLflow model alias",
    )
    serving_dir: Path | None = Field(
        None, description="directory the inference server reads: promote and rollback switch the served version "
        "there (unset: they change states only)"
    )
    mlflow_registry_uri: str | None = Field(None, description="layout 'mlflow-alias': the MLflow registry URI")
    mlflow_alias: str = Field("champion", min_length=1, description="layout 'mlflow-alias': the alias moved")
    reload: Literal["none", "oip", "http", "command"] = Field(
        "none", description="how the server is told to load the switched version: oip (the OIP v2 repository API "
        "of Triton and MLServer), http (POST to reload_url), command (run reload_command) or none"
    )
    reload_url: str | None = Field(None, description="reload 'oip': the server's base URL; 'http': the URL to POST to")
    reload_command: list[str] | None = Field(
        None, description="reload 'command': the command and its arguments (never a shell string)"
    )
    fallback_model: Path | None = Field(
        None, description="model served when no verified known-good version is left to roll back to"
    )
    ready_timeout_s: float = Field(30.0, gt=0, description="seconds to wait for the server to serve a switch")
    # The database: SQLite at <root>/registry.db unless a URL says otherwise (a fleet: postgresql://...).
    database_url: str | None = Field(
        None, description="e.g. postgresql://goldwatch@db.internal:5432/registry (no password: see below)"
    )
    database_url_env: str = Field(
        "GOLDWATCH_DATABASE_URL", description="env var holding the whole URL (it may carry the password); wins"
    )
    database_password_env: str | None = Field(None, description="env var holding the database password")
    database_password_file: Path | None = Field(None, description="file holding the database password")
    host: str | None = Field(
        None, description="this host's name in a fleet registry (default: $GOLDWATCH_HOST, else the hostname)"
    )

    @field_validator("database_url")
    @classmethod
    def _no_password_in_url(cls, value: str | None) -> str | None:
        if value is not None:
            from urllib.parse import urlsplit

            try:
                has_password = urlsplit(value).password is not None or "password=" in value.lower()
            except ValueError:
                has_password = False
            if has_password:
                raise ValueError(
                    "the URL carries a password; secrets never live in the config file: put it in "
                    "database_password_env / database_password_file, or the whole URL in database_url_env"
                )
        return value


class GateConfig(_Section):
    """Thresholds of ``goldwatch gate`` (flags override them; see docs/gate.md)."""

    min_top1_agreement: float = Field(0.99, ge=0, le=1, description="candidate vs baseline top-1 agreement")
    metric_min_absolute_change: float = Field(
        0.0, description="MLflow-style: required gain of the candidate's metric over the baseline's (may be < 0)"
    )
    metric_min_relative_change: float = Field(0.0, description="required gain as a fraction of the baseline's")
    drift_p_threshold: float = Field(0.01, gt=0, lt=1, description="output drift vs baseline: significance level")
    drift_correction: Literal["bonferroni", "bh", "none"] = Field(
        "bonferroni", description="multiple-testing correction of the output drift test across output columns"
    )
    drift_min_effect: float = Field(
        0.01, ge=0, description="output drift vs baseline counts only beyond this fraction of the output's scale "
        "(the std of the baseline's values): the effect floor, reported in the output's units",
    )
    min_baseline_cosine: float = Field(
        0.99, ge=-1, le=1, description="embeddings: min per-sample cosine similarity of candidate vs baseline"
    )
    latency_budget_ms_p50: float | None = Field(None, gt=0, description="per-batch p50 budget; none = report only")
    latency_budget_ms_p95: float | None = Field(None, gt=0, description="per-batch p95 budget; none = report only")
    latency_repeats: int = Field(20, ge=1, le=10000, description="timed batches per device")
    min_device_top1_agreement: float = Field(1.0, ge=0, le=1, description="CPU vs CUDA top-1 agreement")


class RuntimesConfig(_Section):
    """Model loading. A model directory's factory runs only from a trusted module (see goldwatch.runtimes.torch)."""

    trusted_factories: list[
        Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")]
    ] = Field(
        [],
        description="module prefixes whose factories model directories may name, e.g. 'mycompany.models' "
        "(goldwatch.examples.models is always trusted)",
    )


class PagerDutyConfig(_Section):
    """PagerDuty Events API v2. Active when the routing key resolves (env var wins over the file)."""

    events_url: str | None = Field(
        None, pattern=r"^https?://\S+$",
        description="Events API base URL; $GOLDWATCH_PAGERDUTY_EVENTS_URL wins; default https://events.pagerduty.com",
    )
    events_url_env: str = Field(
        "GOLDWATCH_PAGERDUTY_EVENTS_URL", description="environment variable that overrides events_url"
    )
    routing_key_env: str = Field(
        "GOLDWATCH_PAGERDUTY_ROUTING_KEY",
        description="environment variable holding the Events API v2 integration (routing) key",
    )
    routing_key_file: Path | None = Field(
        None, description="file holding the routing key (e.g. a mounted secret); the environment variable wins"
    )
    rate_limit_per_minute: int = Field(120, ge=1, description="PagerDuty allows about 120 events/min per key")
    timeout_s: float = Field(10.0, gt=0, le=300, description="seconds per request to the Events API")


class WebhookConfig(_Section):
    """A generic JSON webhook (e.g. a Slack incoming webhook); the URL comes from url_env or url_file."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="the webhook's name in messages and the outbox")
    url_env: str | None = Field(None, description="env var holding the webhook URL (URLs often embed a token)")
    url_file: Path | None = Field(None, description="file holding the webhook URL (url_env wins)")
    rate_limit_per_minute: int = Field(60, ge=1, description="events per minute sent to this webhook at most")
    timeout_s: float = Field(10.0, gt=0, le=300, description="seconds per request")


class AlertsConfig(_Section):
    source: str | None = Field(None, description="host/pod name shown to responders; default: the hostname")
    runbook_url: str | None = Field(None, description="runbook link sent with every incident")
    rto_seconds: float = Field(60.0, gt=0, description="recovery-time objective reported with each incident")
    pagerduty: PagerDutyConfig = PagerDutyConfig()
    webhooks: list[WebhookConfig] = []
    outbox_path: Path | None = Field(None, description="alert outbox database; default <registry.root>/alerts.sqlite")
    renotify_s: float = Field(3600.0, gt=0, description="re-send an unchanged open incident at most this often")
    resolve_after_s: float = Field(0.0, ge=0, description="resolve only after checks pass for this long (anti-flap)")
    retry_base_s: float = Field(2.0, gt=0, description="first retry delay; doubles per attempt, with jitter")
    retry_max_delay_s: float = Field(300.0, gt=0, description="upper bound of one retry delay")
    max_age_s: float = Field(86400.0, gt=0, description="undelivered this long: kept as a dead letter")


_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class LiveColumnConfig(_Section):
    """One watched column of live traffic (see :mod:`goldwatch.watchdog.live.schema`)."""

    name: str = Field(min_length=1, max_length=200, description="the feature's name in results and metrics")
    kind: Literal["numeric", "categorical"] = Field(
        "numeric", description="numeric (KS or a distance test) or categorical (chi-squared; strings, class ids)")
    tensor: str | None = Field(None, description="OIP v2 tensor (or v1 object key) it is read from; default: name")
    index: int | None = Field(None, ge=0, description="its index along the tensor's last axis")
    derive: Literal["argmax"] | None = Field(None, description="argmax: the predicted class of a scores tensor")


class LiveDriftConfig(_Section):
    """Live-traffic drift of one model: reference, schema, windows, tests, page rule, ingestion bounds.

    The defaults page at most once in 1,000 windows of stable data with 100 features, page a 0.2-sigma shift of one
    feature within 2 windows of 5,000 rows and a 10% NaN spike within 1 (benchmarks/RESULTS.md).
    """

    enabled: bool = Field(True, description="false: the model's live traffic is not watched (the sink refuses its "
                          "events as an unknown model, counted)")
    reference: Path | None = Field(None, description="reference rows: .csv, .parquet or .npz (columns by name)")
    reference_versions: dict[str, Path] = Field(
        {}, description="a reference file per served version (a rollback switches to the version's own)")
    reference_golden: Path | None = Field(None, description="a golden set: its inputs and expected outputs")
    reference_registry: bool = Field(
        False, description="the golden sets the served registry version links (follows promotions and rollbacks)")
    inputs: list[LiveColumnConfig] = Field(
        [], description="columns read from requests; default: the golden set's signature, else the first request")
    outputs: list[LiveColumnConfig] = Field([], description="columns read from responses (prediction drift)")
    window_rows: int = Field(5000, ge=10, le=10_000_000, description="a window closes at this many rows ...")
    window_seconds: float = Field(300.0, gt=0, description="... or after this many seconds, whichever is first")
    min_window_rows: int = Field(500, ge=10, description="a smaller window is reported as too small, not tested")
    test: Literal["ks", "psi", "js", "hellinger", "kl"] = Field(
        "ks", description="numeric test (KS against the pre-sorted reference); categories: chi-squared")
    alpha: float = Field(0.01, gt=0, lt=1, description="significance level after the correction")
    correction: Literal["bonferroni", "bh", "none"] = Field(
        "bonferroni", description="multiple-testing correction over a window's features: Bonferroni (family-wise) "
        "or Benjamini-Hochberg (false discovery rate)")
    min_effect: float | None = Field(
        0.05, ge=0, description="effect-size floor (KS statistic, total variation distance) a drift must reach")
    threshold: float | None = Field(None, gt=0, description="distance tests: drift above this (default per test)")
    consecutive: int = Field(2, ge=1, le=100, description="drifted windows in a row before a page")
    trend: Literal["cusum", "page-hinkley", "none"] = Field(
        "cusum", description="streaming detector over each feature's per-window evidence")
    trend_h: float = Field(14.0, gt=0, description="its decision threshold (standard deviations)")
    trend_k: float = Field(0.5, ge=0, description="its allowance (standard deviations)")
    quality_alpha: float = Field(0.001, gt=0, lt=1, description="data quality: significance (Bonferroni)")
    quality_min_increase: float = Field(
        0.02, gt=0, le=1, description="data quality: a rate must exceed the reference's by at least this")
    metrics_features: list[str] = Field(
        [], description="features with their own Prometheus series (bounded cardinality: only these)")
    max_queue_events: int = Field(20000, ge=1, description="events waiting per model; more are dropped, counted")
    max_queue_bytes: int = Field(64 << 20, ge=1 << 20, description="bytes waiting per model; more are dropped")
    sampling: bool = Field(
        True, description="when events arrive faster than they are processed, test a uniform sample of the pairs "
        "(by a hash of the pair's id) instead of filling the queue")
    min_sample_rate: float = Field(0.01, gt=0, le=1, description="the sample never goes below this share of pairs")
    pair_ttl_s: float = Field(30.0, gt=0, description="a request or response unpaired this long is an orphan")
    max_pending_pairs: int = Field(20000, ge=1, description="unpaired halves kept at most (oldest leave first)")
    history: int = Field(50, ge=1, le=10000, description="closed windows kept for the API and the HTML page")
    aliases: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        [], description="other names payload loggers give the model (Ce-Inferenceservicename, Ce-Modelid)")

    @model_validator(mode="after")
    def _consistent(self) -> LiveDriftConfig:
        problems = []
        if self.min_window_rows > self.window_rows:
            problems.append(f"min_window_rows ({self.min_window_rows}) exceeds window_rows ({self.window_rows})")
        sources = [k for k in ("reference", "reference_golden") if getattr(self, k) is not None]
        if self.reference_registry:
            sources.append("reference_registry")
        if len(sources) > 1:
            problems.append(f"give one reference source, not {' and '.join(sources)} (reference_versions may "
                            "come with any)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class LiveDriftModelConfig(LiveDriftConfig):
    """One model, by the name it is watched under (``[[serve.watch]] name``)."""

    name: str = Field(pattern=_NAME_PATTERN, description="the model's name in metrics, incidents and the API")


class LiveDriftSection(_Section):
    """The models whose live traffic is watched for drift (standalone, or beside ``[serve.watch.drift]``), and the
    sink's bounds."""

    checkpoint: Path | None = Field(
        None, description="standalone: SQLite file for detector and window state (the sidecar uses its journal)")
    max_body_bytes: int = Field(8 << 20, ge=1024, description="largest event body the sink accepts")
    decode_processes: int = Field(
        0, ge=0, le=64, description="processes that parse event bodies (0: the worker thread; 1 frees the GIL "
        "for the HTTP server at high event rates)")
    switch_interval_ms: float | None = Field(
        None, gt=0, le=100, description="the interpreter's thread switch interval while live drift runs (Python's "
        "default is 5 ms; 1 ms lets the sink answer between the worker's steps at thousands of events/s)")
    sink_port: int | None = Field(
        None, ge=0, le=65535, description="in goldwatch serve: also take the payload logger's events on this port "
        "(SinkServer, httptools: ~3x the rate of the API port's route); none: the API port only")
    models: list[LiveDriftModelConfig] = []

    @model_validator(mode="after")
    def _unique(self) -> LiveDriftSection:
        names = [n for m in self.models for n in (m.name, *m.aliases)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names and aliases must be unique, repeated: {', '.join(duplicates)}")
        return self


_OIP_MODEL_URL = r"^https?://[^/\s]+/v2/models/[^/\s]+(/versions/[^/\s]+)?/?$"


class ServeCheckConfig(_Section):
    """One scheduled check of a watched model: how often, and how long one run may take before it counts as an
    error (the run is abandoned, never waited for)."""

    enabled: bool = Field(True, description="false: this check never runs for this model")
    interval_s: float = Field(30.0, gt=0, description="seconds between two runs (each run is jittered)")
    timeout_s: float = Field(60.0, gt=0, description="a run still going after this is reported as an error")


class ServeFilesCheck(ServeCheckConfig):
    """Served files against the served version's manifest."""

    interval_s: float = Field(30.0, gt=0)
    timeout_s: float = Field(600.0, gt=0)
    digest: Literal["fast", "sha256"] = Field(
        "fast", description="fast: XXH3 against a baseline taken when SHA-256 last verified the files; "
        "sha256: the manifest's own digests on every run",
    )
    sha256_interval_s: float = Field(
        3600.0, ge=0, description="with digest = fast, a full SHA-256 verification this often (0: only at start, "
        "after a rollback and on demand)",
    )


class ServeGoldenCheck(ServeCheckConfig):
    """Golden replay against the live endpoint (every request marked as goldwatch's own)."""

    interval_s: float = Field(60.0, gt=0)
    timeout_s: float = Field(60.0, gt=0)
    batch_size: int = Field(16, ge=1, le=100000, description="samples per request: short bursts, never one big one")
    confirm: bool = Field(True, description="confirm a failure with one immediate re-run before acting")


class AlternateConfig(_Section):
    """Where a model's traffic may go when its primary cannot serve it (disaster recovery, scenarios 1, 3 and 4):
    an OIP v2 endpoint that goldwatch replays golden sets against, and routes to only when they pass."""

    url: str = Field(pattern=_OIP_MODEL_URL, description="the alternate's OIP v2 model URL")
    golden: list[Path] = Field([], description="golden sets that prove the alternate before traffic goes to it")
    rto_seconds: float | None = Field(
        None, gt=0, description="serving RTO when traffic moves here (default: the model's rto_seconds)",
    )
    timeout_s: float = Field(30.0, gt=0, description="a verification replay still going after this fails it")
    batch_size: int = Field(16, ge=1, le=100000, description="samples per request of the verification replay")


class FallbackConfig(AlternateConfig):
    """The degradation path (scenario 1, and scenario 3 when no known-good version passes): a smaller or older
    model served elsewhere, proven by its own golden sets."""

    @field_validator("golden")
    @classmethod
    def _proven(cls, value: list[Path]) -> list[Path]:
        if not value:
            raise ValueError("a fallback needs golden sets: it is verified with them before traffic goes to it "
                             "(build one with `goldwatch golden build` against the fallback model)")
        return value


class RouteConfig(_Section):
    """How traffic is moved between the primary and an alternate: a hook a gateway or feature flag listens to.

    ``http``: POST ``{"model", "route", "url", "reason"}`` to ``url`` (2xx: done). ``command``: run ``command``
    (argv, no shell) with ``GOLDWATCH_MODEL``, ``GOLDWATCH_ROUTE``, ``GOLDWATCH_URL`` and ``GOLDWATCH_REASON`` set
    (exit 0: done). ``route`` is ``primary``, ``fallback`` or ``cpu_variant``.
    """

    kind: Literal["http", "command"] = Field(
        "http", description="how traffic is moved: POST to url (http), or run command (command)",
    )
    url: str | None = Field(None, pattern=r"^https?://\S+$", description="kind = http: the hook's URL")
    command: list[str] | None = Field(None, description="kind = command: the argv to run")
    timeout_s: float = Field(10.0, gt=0, le=300, description="a hook still going after this failed")
    route_back_after_s: float = Field(
        30.0, ge=0, description="the primary passes every check this long before traffic goes back to it",
    )

    @model_validator(mode="after")
    def _has_target(self) -> RouteConfig:
        if self.kind == "http" and not self.url:
            raise ValueError('route kind "http" needs url (the hook a gateway or feature flag listens to)')
        if self.kind == "command" and not self.command:
            raise ValueError('route kind "command" needs command, e.g. ["/usr/local/bin/set-route"]')
        return self


class ServeWatchConfig(_Section):
    """One watched model (``[[serve.watch]]``): its OIP v2 endpoint, where its versions come from, its checks."""

    name: str = Field(pattern=_NAME_PATTERN, description="the model's name in metrics, incidents and the API")
    url: str = Field(pattern=_OIP_MODEL_URL, description="http://HOST:PORT/v2/models/NAME[/versions/V]")
    registry_model: str | None = Field(
        None, pattern=_NAME_PATTERN, description="its name in the registry (default: name); rollback needs it",
    )
    served_path: Path | None = Field(None, description="without a registry: the served file or directory")
    manifest: Path | None = Field(None, description="without a registry: the manifest served_path must match")
    serving_dir: Path | None = Field(None, description="the serving pointer's directory (default registry.serving_dir)")
    layout: Literal["current-link", "numbered", "mlflow-alias"] | None = Field(
        None, description="the serving pointer's layout (default registry.layout)",
    )
    reload: Literal["none", "oip", "http", "command"] = Field(
        "oip", description="how the server is told to reload after a rollback (oip: its repository API)",
    )
    reload_url: str | None = Field(None, description="reload = http: the hook; oip: the server (default: from url)")
    reload_command: list[str] | None = Field(
        None, description="reload = command: the command and its arguments (never a shell string)"
    )
    fallback_model: Path | None = Field(
        None, description="served when no verified known-good version is left (default registry.fallback_model)"
    )
    golden: list[Path] = Field([], description="golden sets replayed when the served version links none")
    mode: Literal["act", "observe"] = Field("act", description="observe: page, never act")
    rto_seconds: float | None = Field(None, gt=0, description="recovery-time objective (default alerts.rto_seconds)")
    max_rollbacks_per_hour: int = Field(2, ge=0, description="flap guard: automatic rollbacks per hour, then stop")
    server_down_grace_s: float = Field(
        60.0, ge=0, description="a server not ready this long pages (longer than a pod's termination grace)",
    )
    server_start_grace_s: float = Field(300.0, ge=0, description="a server never seen ready yet pages after this")
    resident_stale_factor: float = Field(
        3.0, gt=1, description="an evidence source silent for this many of its intervals is stale (warning)",
    )
    escalation: str | None = Field(
        None, max_length=500, description="whom the runbooks tell on-call to escalate to (default recovery.escalation)",
    )
    fallback: FallbackConfig | None = Field(None, description="the degradation path (scenarios 1 and 3)")
    cpu_variant: AlternateConfig | None = Field(
        None, description="GPU capacity gone (scenario 4): a CPU deployment proven by the cross-device golden set "
        "(default golden: the served version's)",
    )
    route: RouteConfig | None = Field(None, description="how traffic moves to an alternate and back")
    files: ServeFilesCheck = ServeFilesCheck()
    golden_replay: ServeGoldenCheck = ServeGoldenCheck()
    readiness: ServeCheckConfig = ServeCheckConfig(interval_s=10.0, timeout_s=5.0)
    rollback_readiness: ServeCheckConfig = ServeCheckConfig(interval_s=300.0, timeout_s=600.0)
    version: ServeCheckConfig = ServeCheckConfig(interval_s=30.0, timeout_s=5.0)
    device: ServeCheckConfig = Field(
        ServeCheckConfig(interval_s=10.0, timeout_s=5.0),
        description="the device the server reports for the model (goldwatch's MLServer runtime): GPU lost",
    )
    standby: ServeCheckConfig = Field(
        ServeCheckConfig(interval_s=300.0, timeout_s=120.0),
        description="the fallback and the CPU variant still pass their golden sets (reported; a warning)",
    )
    drift: LiveDriftConfig | None = Field(
        None, description="live-traffic drift of this model ([serve.watch.drift]; process-wide settings under "
        "[live_drift]); drift pages a warning, data quality an error, never a rollback")

    @model_validator(mode="after")
    def _one_source_of_truth(self) -> ServeWatchConfig:
        if (self.served_path is None) != (self.manifest is None):
            raise ValueError("served_path and manifest go together (a watch without a registry needs both)")
        if self.served_path is not None and self.registry_model is not None:
            raise ValueError("give registry_model (rollback on) or served_path + manifest (page only), not both")
        if self.reload == "command" and not self.reload_command:
            raise ValueError('reload = "command" needs reload_command, e.g. ["systemctl", "reload", "model-server"]')
        if self.reload == "http" and not self.reload_url:
            raise ValueError('reload = "http" needs reload_url')
        alternates = [name for name in ("fallback", "cpu_variant") if getattr(self, name) is not None]
        if alternates and self.route is None:
            raise ValueError(f"{' and '.join(alternates)} need [serve.watch.route]: how traffic is moved to them "
                             "(an http hook a gateway or feature flag listens to, or a command)")
        if self.route is not None and not alternates:
            raise ValueError("route is set but there is nowhere to route to: add [serve.watch.fallback] or "
                             "[serve.watch.cpu_variant]")
        return self

    @property
    def uses_registry(self) -> bool:
        return self.served_path is None

    @property
    def model_in_registry(self) -> str:
        return self.registry_model or self.name


class ServeConfig(_Section):
    """``goldwatch serve``: the sidecar's HTTP API, journal, and the models it watches."""

    host: str = Field("127.0.0.1", min_length=1, description="bind address; 0.0.0.0 only inside a pod network")
    port: int = Field(9180, ge=0, le=65535, description="HTTP port (0: any free port)")
    token_env: str | None = Field("GOLDWATCH_SERVE_TOKEN", description="env var holding the API bearer token")
    token_file: Path | None = Field(None, description="file holding the API bearer token")
    journal: Path | None = Field(None, description="decisions and incidents (default <registry.root>/sidecar.sqlite)")
    max_body_bytes: int = Field(1 << 20, ge=1024, le=64 << 20, description="largest request body accepted")
    jitter: float = Field(0.1, ge=0, le=0.5, description="each interval is varied by up to this fraction")
    shutdown_timeout_s: float = Field(8.0, gt=0, le=60, description="SIGTERM: a rollback in progress may finish")
    heartbeat_s: float = Field(
        30.0, gt=0, le=3600, description="how often the sidecar tells the registry it is alive (registry show's "
        "'last seen'); on a shared registry a pod silent for 3 of these stops counting in the fleet's incidents",
    )
    extensions: list[Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]] = Field(
        [], description="'module:attribute' of sidecar extensions (evidence kinds, checks, routes) to load",
    )
    watch: list[ServeWatchConfig] = []

    @model_validator(mode="after")
    def _unique_names(self) -> ServeConfig:
        names = [w.name for w in self.watch]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"watched model names must be unique, repeated: {', '.join(duplicates)}")
        return self

class AssetConfig(_Section):
    """A training asset (a dataset or checkpoints) whose backups are restored and verified on a schedule
    (disaster recovery, scenario 5). Training RPO = the age of the newest backup that restored and verified."""

    name: str = Field(pattern=_NAME_PATTERN, description="the asset's name in metrics, incidents and pages")
    kind: Literal["dataset", "checkpoint"] = Field(
        "dataset", description="dataset: files checked by digest; checkpoint: tensors fingerprinted too, so "
                               "corruption is located to a tensor and block",
    )
    path: Path = Field(description="the live asset: a file or directory")
    manifest: Path | None = Field(
        None, description="the live asset's manifest (goldwatch asset register): checked on every run when set",
    )
    backups: Path = Field(description="the folder of its backups, one snapshot folder each (goldwatch asset backup)")
    rpo_seconds: float = Field(gt=0, description="training RPO: the newest verified restore point may be this old")
    verify_interval_s: float = Field(3600.0, gt=0, description="a restore-and-verify runs this often")
    timeout_s: float = Field(1800.0, gt=0, description="a restore-and-verify still going after this is an error")
    restore_command: list[str] | None = Field(
        None, description="restore a snapshot into the scratch folder ({snapshot}, {scratch} replaced); "
        "default: copy its data folder",
    )
    escalation: str | None = Field(None, max_length=500, description="runbooks: whom to escalate to")


class RecoveryConfig(_Section):
    """Disaster recovery: training assets and their backups, and whom on-call escalates to."""

    escalation: str | None = Field(
        None, max_length=500, description="whom the generated runbooks tell on-call to escalate to",
    )
    scratch: Path | None = Field(
        None, description="where backups are restored to be verified (default <registry.root>/restore-scratch)",
    )
    assets: list[AssetConfig] = []

    @model_validator(mode="after")
    def _unique_assets(self) -> RecoveryConfig:
        names = [a.name for a in self.assets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"asset names must be unique, repeated: {', '.join(duplicates)}")
        return self


class DrillConfig(_Section):
    """``goldwatch drill`` against a named stack (staging). Faults are injected only into a stack whose config
    says ``drill_target = true`` and whose ``stack`` name the command repeats (``--stack NAME``)."""

    stack: str | None = Field(None, pattern=_NAME_PATTERN, description="this stack's name; --stack must repeat it")
    drill_target: bool = Field(False, description="true: this stack may receive injected faults")
    sidecar_url: str | None = Field(None, pattern=r"^https?://\S+$",
                                    description="the sidecar's API (default http://serve.host:serve.port)")
    model: str | None = Field(None, pattern=_NAME_PATTERN, description="the watched model scenarios 1-4 drill")
    asset: str | None = Field(None, pattern=_NAME_PATTERN, description="the asset scenario 5 drills")
    client_url: str | None = Field(
        None, pattern=_OIP_MODEL_URL, description="where clients send the model's requests (their view is measured)",
    )
    stop_command: list[str] | None = Field(None, description="scenario 1: stops the model's server")
    start_command: list[str] | None = Field(None, description="scenario 1: starts it again (the undo)")
    scenario_timeout_s: float = Field(60.0, gt=0, le=3600, description="a scenario not recovered after this fails")


class AgentConfig(_Section):
    """The in-process agent (goldwatch.watchdog.agent) and the MLServer runtime that hosts it."""

    interval_s: float = Field(60.0, gt=0, description="a full pass over the resident weights starts this often")
    duty_cycle: float = Field(
        0.01, gt=0, le=1, description="share of one core (CPU) or of the GPU's time the agent uses while a pass runs"
    )
    slice_mib: int = Field(4, ge=1, le=1024, description="CPU: MiB fingerprinted between two pauses")
    gpu_slice_mib: int = Field(256, ge=1, le=65536, description="CUDA: MiB fingerprinted between two pauses")
    attest: Literal["auto", "never"] = Field(
        "auto", description="'never': refuse tensors that cannot be compared with the file instead of pinning them"
    )
    exclude: list[str] = Field([], description="fnmatch patterns of resident tensors left unchecked (e.g. caches)")
    sidecar_url: str | None = Field(
        None, pattern=r"^https?://\S+$", description="goldwatch serve's base URL; none: metrics only"
    )
    token_env: str = Field("GOLDWATCH_SERVE_TOKEN", description="env var holding the sidecar's bearer token")
    token_file: Path | None = Field(None, description="file holding the sidecar's bearer token (token_env wins)")
    report_timeout_s: float = Field(5.0, gt=0, le=60, description="seconds per evidence report sent to the sidecar")
    report_retries: int = Field(3, ge=0, le=10, description="retries of a report the sidecar did not accept")
    probe_samples: int = Field(16, ge=1, description="ONNX models: golden rows replayed per probe")
    observe: bool = Field(
        False, description="send every served batch's inputs and outputs to the sidecar's live drift "
        "(POST /v1/models/{model}/observe; needs sidecar_url): for servers without a payload logger"
    )
    observe_max_rows: int = Field(
        65_536, ge=1, le=10_000_000, description="served rows held for live drift at most; more are dropped, counted"
    )
    observe_flush_s: float = Field(1.0, gt=0, le=60, description="observed rows are sent at least this often")


class GoldwatchConfig(_Section):
    """The whole ``goldwatch.toml``."""

    logging: LoggingConfig = LoggingConfig()
    detectors: DetectorsConfig = DetectorsConfig()
    golden: GoldenConfig = GoldenConfig()
    registry: RegistryConfig = RegistryConfig()
    gate: GateConfig = GateConfig()
    alerts: AlertsConfig = AlertsConfig()
    runtimes: RuntimesConfig = RuntimesConfig()
    serve: ServeConfig = ServeConfig()
    live_drift: LiveDriftSection = LiveDriftSection()
    agent: AgentConfig = AgentConfig()
    dask: DaskConfig = DaskConfig()
    recovery: RecoveryConfig = RecoveryConfig()
    drill: DrillConfig = DrillConfig()

    @model_validator(mode="after")
    def _assets_are_not_models(self) -> GoldwatchConfig:
        # incidents, pages and the journal name a model or an asset by the same field: they must not collide
        clash = sorted({w.name for w in self.serve.watch} & {a.name for a in self.recovery.assets})
        if clash:
            raise ValueError(f"recovery.assets: {', '.join(clash)} is also a watched model's name; give the asset "
                             "another name")
        return self


def _secret_keys(table: Mapping[str, Any], prefix: str = "") -> list[str]:
    found: list[str] = []
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found += _secret_keys(value, prefix=f"{path}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    found += _secret_keys(item, prefix=f"{path}[{i}].")
        if not key.endswith(("_env", "_file")) and any(word in key.lower() for word in _SECRET_WORDS):
            found.append(path)
    return found


def _format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def parse_config(text: str, *, source: str = DEFAULT_CONFIG_NAME) -> GoldwatchConfig:
    """Parse and validate TOML ``text``; ``source`` names the file in error messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=source, hint="check the syntax at that line") from None
    secrets = _secret_keys(raw)
    if secrets:
        raise ConfigError(
            f"secrets must not be written in the config file ({', '.join(secrets)})",
            where=source,
            hint="remove them and name an environment variable (KEY_env = \"VAR\") or a file (KEY_file = \"path\")",
        )
    try:
        return GoldwatchConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            if err["type"] == "value_error":  # a validator's own sentence: pydantic's prefix adds nothing
                msg = msg.removeprefix("Value error, ")
            if err["type"] != "extra_forbidden" and err["type"] != "missing" and "input" in err \
                    and not isinstance(err["input"], Mapping):  # a whole table is no help; its key path is
                msg += f" (got {mask_url(repr(err['input']))})"
            problems.append(f"{_format_loc(err['loc'])}: {msg}")
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ConfigError(
            f"{count}: " + "; ".join(problems),
            where=source,
            hint="see docs/reference/config.md for every key, its type and default",
        ) from None


def load_config(path: str | os.PathLike[str] | None = None) -> GoldwatchConfig:
    """Load ``path``; with ``None``, ``./goldwatch.toml`` if it exists, else the embedded defaults."""
    if path is None:
        default = Path(DEFAULT_CONFIG_NAME)
        if not default.is_file():
            return GoldwatchConfig()
        path = default
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", where=str(path), hint="pass an existing goldwatch.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file ({exc})", where=str(path)) from None
    return parse_config(text, source=str(path))


def resolve_secret(*, env: str | None, file: Path | None, what: str) -> str | None:
    """Read a secret from the environment variable ``env`` or from ``file`` (env wins); None if neither is set.

    The value is never logged; errors name only the variable or file, never the secret.
    """
    if env and os.environ.get(env):
        return os.environ[env].strip()
    if file is not None:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the {what} file ({exc.strerror})", where=str(file), hint="check the path and permissions"
            ) from None
        if not value:
            raise ConfigError(f"the {what} file is empty", where=str(file))
        return value
    return None
