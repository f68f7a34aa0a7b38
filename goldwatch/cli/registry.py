"""``goldwatch registry``: add, list, show, promote, quarantine, roll back, check, prune and migrate.

The registry root, database, serving directory, layout, reload adapter and fallback come from ``[registry]`` in
goldwatch.toml; ``--registry-root``, ``--db``, ``--serving-dir`` and ``--layout`` override them. The database URL
comes from ``--db``, else the environment variable ``registry.database_url_env`` names
(``$GOLDWATCH_DATABASE_URL``: the only place a URL may carry its password), else ``registry.database_url``, else
SQLite in the root. A password kept apart comes from ``registry.database_password_env`` / ``_file`` (or libpq's
``PGPASSWORD`` / ``~/.pgpass``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from goldwatch import progress
from goldwatch.cli._common import emit_json, finish, guarded, json_option, state
from goldwatch.cli._grammar import deprecated_alias
from goldwatch.errors import ConfigError, RegistryError

if TYPE_CHECKING:
    from goldwatch.watchdog.registry import DatabaseUrl, Registry
    from goldwatch.watchdog.registry.pointer import ServingPointer


def _database(opts: dict[str, Any]) -> DatabaseUrl | None:
    """The database URL the options, the environment and the config name (None: SQLite in the root)."""
    from goldwatch.config import resolve_secret
    from goldwatch.watchdog.registry import database_from_config, parse_database_url

    cfg = state().config.registry
    if not opts.get("db"):
        return database_from_config(cfg)
    url = parse_database_url(opts["db"], where="--db")
    if url.password:
        raise ConfigError("--db carries a password, which any user can read from the process list", where="--db",
                          hint=f"put the URL in ${cfg.database_url_env}, or the password in "
                               "registry.database_password_env / database_password_file")
    password = resolve_secret(env=cfg.database_password_env, file=cfg.database_password_file,
                              what="database password")
    return url.with_password(password)


def _root(ctx: click.Context) -> tuple[Path, dict[str, Any]]:
    opts = ctx.parent.params if ctx.parent is not None else {}
    return Path(opts.get("root") or state().config.registry.root), opts


def _open(ctx: click.Context, model: str | None = None) -> Registry:
    from goldwatch.watchdog.registry import Registry, Serving, host_from_config, make_pointer, make_reloader

    root, opts = _root(ctx)
    cfg = state().config.registry
    serving_dir = opts.get("serving_dir") or cfg.serving_dir
    layout = opts.get("layout") or cfg.layout
    serving: dict[str, Serving] = {}
    pointer: ServingPointer | None = None
    if model is not None and layout == "mlflow-alias":
        if not cfg.mlflow_registry_uri:
            raise ConfigError("layout 'mlflow-alias' needs mlflow_registry_uri",
                              where="goldwatch.toml: registry.mlflow_registry_uri",
                              hint='e.g. mlflow_registry_uri = "sqlite:///mlflow.db"')
        from goldwatch.watchdog.registry.mlflow_backend import MlflowAliasPointer

        pointer = MlflowAliasPointer(cfg.mlflow_registry_uri, model, alias=cfg.mlflow_alias)
    elif model is not None and serving_dir is not None:
        pointer = make_pointer(layout, Path(serving_dir))
    if model is not None and pointer is not None:
        reloader = make_reloader(cfg.reload, model=model, url=cfg.reload_url, command=cfg.reload_command,
                                 timeout_s=cfg.ready_timeout_s)
        serving[model] = Serving(pointer, reloader=reloader, fallback=cfg.fallback_model,
                                 ready_timeout_s=cfg.ready_timeout_s)
    return Registry.open(root, serving=serving, database=_database(opts), host=host_from_config(cfg))


def _evidence(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise RegistryError(f"not valid JSON ({exc})", where="--evidence", hint='e.g. --evidence \'{"run": 42}\'') \
            from None
    if not isinstance(value, dict):
        raise RegistryError("must be a JSON object", where="--evidence", hint='e.g. --evidence \'{"run": 42}\'')
    return value


def _line(mv: Any) -> str:
    serving = "  (serving)" if mv.serving else ""
    return (f"{mv.model} {mv.version:<8} {mv.state:<12} {mv.size_bytes:>12} B  {mv.digest[:12]}  "
            f"{mv.created_at}{serving}")


@click.group("registry")
@click.option("--registry-root", "root", type=click.Path(file_okay=False), envvar="GOLDWATCH_REGISTRY_ROOT",
              help="Registry directory (default: registry.root from the config, else ./.goldwatch).")
@deprecated_alias("--root", target="root", replacement="--registry-root DIR", type=click.Path(file_okay=False))
@click.option("--db", default=None, metavar="URL",
              help="Database URL: sqlite:///path or postgresql://user@host:5432/db, without a password "
                   "(default: $GOLDWATCH_DATABASE_URL, registry.database_url, else SQLite in the root).")
@click.option("--serving-dir", type=click.Path(file_okay=False), default=None,
              help="Directory the inference server reads (default: registry.serving_dir).")
@click.option("--layout", type=click.Choice(["current-link", "numbered", "mlflow-alias"]), default=None,
              help="Serving pointer layout (default: registry.layout).")
def registry(root: str | None, db: str | None, serving_dir: str | None, layout: str | None) -> None:
    """Model versions, their verified known-good states, and verified rollback."""


@registry.command("add")
@click.argument("model")
@click.argument("path", type=click.Path())
@click.option("--version", "version", default=None, help="Version name (default: the next number).")
@click.option("--golden", multiple=True, type=click.Path(), help="Golden set to link (repeatable).")
@click.option("--actor", default=None, help="Who is adding it (default: user@host).")
@click.option("--reason", default="registered", show_default=True, help="Why (recorded in the audit trail).")
@json_option
@click.pass_context
@guarded
def add(ctx: click.Context, model: str, path: str, version: str | None, golden: tuple[str, ...],
        actor: str | None, reason: str, as_json: bool) -> None:
    """Store PATH (file or directory) as a new candidate version of MODEL and compute its manifest."""
    from goldwatch.cli.integrity import _artifact_bytes
    from goldwatch.watchdog.registry.core import check_add_inputs

    check_add_inputs(model, path, version=version, golden=golden)  # before _open creates a registry
    # bytes read: copied into the store (hashed on the way), then digested and fingerprinted for the manifest
    work = _artifact_bytes(Path(path), passes=1) + _artifact_bytes(Path(path), passes=2)
    with _open(ctx) as reg, progress.task(f"registry add {Path(path).name}", total=work, unit="B"):
        mv = reg.add(model, path, version=version, golden=golden, actor=actor, reason=reason)
    if as_json:
        emit_json(mv)
    else:
        click.echo(f"added {mv.model} {mv.version} ({mv.size_bytes} bytes, digest {mv.digest[:16]}) as candidate")


@registry.command("list")
@click.argument("model", required=False)
@click.option("--state", "state_", type=click.Choice(["candidate", "known-good", "quarantined", "retired"]),
              help="Only versions in this state.")
@json_option
@click.pass_context
@guarded
def list_(ctx: click.Context, model: str | None, state_: Any, as_json: bool) -> None:
    """List versions (of MODEL, or of every model), oldest first."""
    with _open(ctx) as reg:
        versions = reg.list(model, state=state_)
    if as_json:
        emit_json(versions)
        return
    for mv in versions:
        click.echo(_line(mv))
    if not versions:
        click.echo("no versions")


@registry.command("show")
@click.argument("model")
@click.argument("version", required=False)
@json_option
@click.pass_context
@guarded
def show(ctx: click.Context, model: str, version: str | None, as_json: bool) -> None:
    """Show MODEL (versions, which hosts serve what, audit trail) or one VERSION of it (and which hosts serve it)."""
    with _open(ctx) as reg:
        versions = [reg.get(model, version)] if version is not None else reg.list(model)
        history = reg.history(model, version)
        serving = reg.serving_target(model)
        served_by = reg.served_by(model, version=version)
    if as_json:
        emit_json({"model": model, "versions": versions, "history": history,
                   "serving": {"version": serving[0], "target": serving[1]} if serving else None,
                   "served_by": served_by})
        return
    for mv in versions:
        click.echo(_line(mv))
        click.echo(f"    path: {mv.path}\n    manifest: {mv.manifest_path}")
        for g in mv.golden:
            click.echo(f"    golden: {g}")
    what = f"{model} {version}" if version is not None else model
    click.echo(f"served by ({len(served_by)} host{'' if len(served_by) == 1 else 's'} serving {what}):")
    for s in served_by:
        click.echo(f"  {s.host:<24} {s.version or 'fallback':<8} switched {s.switched_at}  "
                   f"last seen {s.last_seen or 'never'}")
    click.echo("history:")
    for e in history:
        change = f"{e.from_state or '-'} -> {e.to_state}" if e.to_state else ""
        click.echo(f"  {e.at}  {e.action:<10} {e.version or '-':<8} {change:<26} {e.actor}: {e.reason}")


@registry.command("promote")
@click.argument("model")
@click.argument("version")
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@click.option("--actor", default=None, help="Who (default: user@host).")
@click.option("--evidence", default=None, help="JSON object recorded with the promotion (e.g. the gate verdict).")
@click.option("--serve/--no-serve", default=None,
              help="Also switch the serving pointer (default: when a serving directory is configured).")
@json_option
@click.pass_context
@guarded
def promote(ctx: click.Context, model: str, version: str, reason: str, actor: str | None, evidence: str | None,
            serve: bool | None, as_json: bool) -> None:
    """Verify VERSION's artifact and mark it known-good (exit 2, nothing changed, if it fails to verify).

    With alerting configured ([alerts]), a PagerDuty change event follows; an alerting problem only warns.
    """
    from goldwatch.cli.alert import announce_promotion

    with _open(ctx, model) as reg:
        mv = reg.promote(model, version, actor=actor, reason=reason, evidence=_evidence(evidence), serve=serve)
    if as_json:
        emit_json(mv)
    else:
        click.echo(f"promoted {mv.model} {mv.version} to {mv.state}" + (" (serving)" if mv.serving else ""))
        for warning in mv.warnings:
            click.echo(f"goldwatch: warning: {warning}", err=True)
    announce_promotion(mv, actor=actor, reason=reason, evidence=_evidence(evidence))


@registry.command("quarantine")
@click.argument("model")
@click.argument("version")
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@click.option("--actor", default=None, help="Who (default: user@host).")
@json_option
@click.pass_context
@guarded
def quarantine(ctx: click.Context, model: str, version: str, reason: str, actor: str | None, as_json: bool) -> None:
    """Mark VERSION as bad: it is never promoted, served or rolled back to again."""
    with _open(ctx) as reg:
        mv = reg.quarantine(model, version, actor=actor, reason=reason)
    if as_json:
        emit_json(mv)
    else:
        click.echo(f"quarantined {mv.model} {mv.version}")


@registry.command("rollback")
@click.argument("model")
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@click.option("--actor", default=None, help="Who (default: user@host).")
@click.option("--keep-current", is_flag=True, help="Do not quarantine the version rolled back from.")
@click.option("--replay-golden", "golden", is_flag=True,
              help="Also replay each candidate target's linked golden sets on CPU.")
@deprecated_alias("--golden", target="golden", replacement="--replay-golden", is_flag=True)
@json_option
@click.pass_context
@guarded
def rollback(ctx: click.Context, model: str, reason: str, actor: str | None, keep_current: bool, golden: bool,
             as_json: bool) -> None:
    """Serve the newest known-good version that re-verifies; exit 1 if there is none (or the server fails).

    With alerting configured ([alerts]), a PagerDuty change event and an incident saying what was done follow,
    also when the rollback failed; an alerting problem only warns.
    """
    from goldwatch.cli.alert import announce_rollback
    from goldwatch.runtimes.torch import trusting_factories

    with _open(ctx, model) as reg, trusting_factories(state().config.runtimes.trusted_factories):
        result = reg.rollback(model, actor=actor, reason=reason, quarantine_current=not keep_current,
                              golden=golden)
    if as_json:
        emit_json({**_jsonable(result), "ok": result.ok, "total_s": result.total_s, "summary": result.summary()})
    else:
        click.echo(result.summary())
        for skipped in result.skipped:
            click.echo(f"  skipped {skipped.version}: {skipped.reason}"
                       + (" (quarantined)" if skipped.quarantined else " (not quarantined)"))
        click.echo("  phases: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in result.phases.items()))
        for warning in result.warnings:
            click.echo(f"goldwatch: warning: {warning}", err=True)
    announce_rollback(model, result, actor=actor, reason=reason)
    finish(result.ok)


@registry.command("check")
@click.argument("model")
@click.option("--load", is_flag=True, help="Also load the rollback target with its runtime.")
@click.option("--replay-golden", "golden", is_flag=True, help="Also replay the target's linked golden sets on CPU.")
@deprecated_alias("--golden", target="golden", replacement="--replay-golden", is_flag=True)
@json_option
@click.pass_context
@guarded
def check(ctx: click.Context, model: str, load: bool, golden: bool, as_json: bool) -> None:
    """Rollback readiness: a target exists, its digests match, the pointer agrees (exit 1 if not)."""
    from goldwatch.runtimes.torch import trusting_factories

    with _open(ctx, model) as reg, trusting_factories(state().config.runtimes.trusted_factories):
        report = reg.check(model, load=load, golden=golden)
    if as_json:
        emit_json({"model": report.model, "ok": report.ok, "target": report.target, "checks": report.checks})
    else:
        for c in report.checks:
            click.echo(f"{c.status.upper():<5} {c.name}: {c.summary}")
    finish(report.ok)


@registry.command("prune")
@click.argument("model")
@click.option("--keep", type=click.IntRange(min=1), default=None,
              help="Known-good versions to keep (default: registry.keep_known_good).")
@click.option("--actor", default=None, help="Who (default: user@host).")
@json_option
@click.pass_context
@guarded
def prune(ctx: click.Context, model: str, keep: int | None, actor: str | None, as_json: bool) -> None:
    """Retention: retire known-good versions beyond the newest K and free their bytes (never the last verified)."""
    with _open(ctx) as reg:
        report = reg.apply_retention(model, keep=keep or state().config.registry.keep_known_good, actor=actor)
    if as_json:
        emit_json(report)
    else:
        click.echo(f"kept {', '.join(report.kept) or 'none'}; retired {', '.join(report.retired) or 'none'}; "
                   f"freed {report.deleted_bytes} bytes")


def _jsonable(value: Any) -> Any:
    from goldwatch.serialize import to_jsonable

    return to_jsonable(value)


@registry.command("migrate")
@json_option
@click.pass_context
@guarded
def migrate(ctx: click.Context, as_json: bool) -> None:
    """Upgrade the registry database's schema to this goldwatch's (once per fleet, after every host can read it).

    SQLite registries are upgraded when opened; a shared PostgreSQL registry only by this command.
    """
    from goldwatch.watchdog.registry import Registry, host_from_config

    root, opts = _root(ctx)
    before, after = Registry.migrate(root, database=_database(opts), host=host_from_config(state().config.registry))
    if as_json:
        emit_json({"from": before, "to": after, "changed": before != after})
    elif before == after:
        click.echo(f"the registry database is at schema {after} already; nothing to do")
    else:
        click.echo(f"migrated the registry database from schema {before} to {after}")


@registry.command("forget-host")
@click.argument("host")
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@click.option("--actor", default=None, help="Who (default: user@host).")
@json_option
@click.pass_context
@guarded
def forget_host(ctx: click.Context, host: str, reason: str, actor: str | None, as_json: bool) -> None:
    """Drop HOST's serving records (a pod that is gone for good), so `show` no longer lists it."""
    with _open(ctx) as reg:
        dropped = reg.forget_host(host, actor=actor, reason=reason)
    if as_json:
        emit_json({"host": host, "dropped": dropped})
    else:
        click.echo(f"forgot {host}: {dropped} serving record(s) dropped")
