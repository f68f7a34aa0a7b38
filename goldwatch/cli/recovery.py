"""Disaster recovery on the command line: ``goldwatch drill``, ``goldwatch runbook`` and ``goldwatch asset``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from goldwatch import progress
from goldwatch.cli._common import emit_json, finish, guarded, json_option, state
from goldwatch.errors import InvalidInputError

__all__ = ["asset", "drill", "runbook"]


def _say(msg: str) -> None:
    click.echo(f"goldwatch drill: {msg}", err=True)


@click.command()
@click.argument("scenario", default="all", metavar="[SCENARIO]")
@click.option("--stack", "stack_name", default=None,
              help="The stack to drill, as its goldwatch.toml names it ([drill] stack, with drill_target = true).")
@click.option("--local-stack", is_flag=True,
              help="Build a local stack (MLServer x2, gateway, PagerDuty stand-in, goldwatch serve) under --out, "
                   "drill it, tear it down.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("goldwatch-drill"),
              show_default=True, help="Folder the drill writes: the report in OUT/report (drill.md, drill.html, "
                                      "drill.json) and, with --local-stack, the stack itself (only a folder a drill "
                                      "made is ever overwritten).")
@click.option("--seed", type=int, default=0, show_default=True, help="--local-stack: seed of its example models.")
@json_option
@guarded
def drill(scenario: str, stack_name: str | None, local_stack: bool, out: Path, seed: int, as_json: bool) -> None:
    """Inject each scenario's fault into a stack named as a drill target, measure detection, action, recovery and
    data loss, restore the stack, and write the DR report.

    SCENARIO: all (default), 1-5, a name (server-unreachable, model-corrupted, model-wrong, gpu-lost,
    training-data-lost), or several separated by commas. Faults go only into --local-stack or into the stack
    --stack NAME whose goldwatch.toml says [drill] stack = NAME and drill_target = true. Exit 0 when every target
    is met, 1 when one is not, 2 on a usage or environment error.
    """
    from goldwatch.watchdog.recovery.drill import parse_scenarios, run_drill
    from goldwatch.watchdog.recovery.report import write_report

    keys = parse_scenarios(scenario)
    if local_stack == (stack_name is not None):
        raise InvalidInputError("name the stack to drill: --stack NAME, or --local-stack (not both)",
                                where="goldwatch drill", hint="goldwatch drill all --local-stack")
    t0 = time.perf_counter()
    extra: dict[str, float] = {}
    if local_stack:
        from goldwatch.watchdog.recovery.runbooks import write_runbooks
        from goldwatch.watchdog.recovery.stack import start_local_stack

        with start_local_stack(out, seed=seed, say=_say) as stack:
            target = stack.target()
            write_runbooks(target.config, stack.root / "runbooks", config_path=str(stack.config_path))
            _say(f"the stack is up in {stack.started_s:.1f} s; drilling {', '.join(keys)}")
            report = run_drill(target, keys, say=_say, undo_path=stack.root / "drill-undo.json",
                               config_path=str(stack.config_path))
            extra = {"stack_s": round(stack.started_s, 3), "mlserver_start_s": round(stack.mlserver_start_s, 3)}
        runbook_url = target.config.alerts.runbook_url
    else:
        from goldwatch.config import resolve_secret
        from goldwatch.watchdog.recovery.drill import named_target

        app = state()
        config = app.config
        token = resolve_secret(env=config.serve.token_env, file=config.serve.token_file, what="API token")
        target = named_target(config, stack=stack_name, token=token)
        report = run_drill(target, keys, say=_say, undo_path=out / "report" / "drill-undo.json",
                           config_path=app.config_path)
        runbook_url = config.alerts.runbook_url
    files = write_report(report, out / "report", runbook_url=runbook_url)
    total = time.perf_counter() - t0
    if as_json:
        from goldwatch.watchdog.recovery.report import report_dict

        emit_json(report_dict(report) | extra | {"total_s": round(total, 3), "files": {
            "markdown": str(files.markdown), "html": str(files.html), "json": str(files.json)}})
    else:
        _print(report, files, total)
    finish(report.ok)


def _print(report: Any, files: Any, total: float) -> None:
    click.echo(f"goldwatch drill of stack {report.stack}: {'PASS' if report.ok else 'FAIL'} "
               f"({report.duration_s:.1f} s of drills, {total:.1f} s in all)")
    for r in report.results:
        measured = "-" if r.measured_s is None else f"{r.measured_s:.3f} s"
        target = "-" if r.target_s is None else f"{r.target_name} <= {r.target_s:g} s"
        slug = r.slug + (" (none left)" if r.key == "3b" else "")  # no known-good version left
        click.echo(f"  {r.status.upper():5} {r.key:<3} {slug:<24} {measured:>11}  ({target})  {r.summary[:110]}")
    for note in report.notes:
        click.echo(f"  note: {note}")
    click.echo(f"  report: {files.html}  (also {files.markdown}, {files.json})")


@click.command()
@click.argument("model", required=False)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runbooks"), show_default=True,
              help="Folder for README.md (every runbook, with the anchors pages link to) and MODEL/N-SCENARIO.md.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the runbooks instead of writing them.")
@json_option
@guarded
def runbook(model: str | None, out: Path, to_stdout: bool, as_json: bool) -> None:
    """Generate one Markdown runbook per disaster scenario from goldwatch.toml: how to recognise it (the page and the
    metric), what goldwatch already did, the exact commands to check and to undo, whom to escalate to.

    MODEL: one watched model or asset (default: all). Point alerts.runbook_url at where OUT/README.md is published:
    every page links its scenario's anchor there.
    """
    from goldwatch.watchdog.recovery.runbooks import runbooks, write_runbooks

    app = state()
    if to_stdout or as_json:
        books = runbooks(app.config, subject=model, config_path=app.config_path)
        if as_json and to_stdout:
            emit_json([{"subject": b.subject, "scenario": b.scenario.slug, "anchor": b.anchor, "path": str(b.path),
                        "text": b.text} for b in books])
            return
        if to_stdout:
            for book in books:
                click.echo(book.text)
            return
    written = write_runbooks(app.config, out, subject=model, config_path=app.config_path)
    if as_json:
        emit_json({"index": str(written[0]), "runbooks": [
            {"subject": b.subject, "scenario": b.scenario.slug, "anchor": b.anchor, "path": str(out / b.path)}
            for b in books]})
        return
    click.echo(f"goldwatch runbook: {len(written) - 1} runbook(s) and their index {written[0]}")


@click.group()
def asset() -> None:
    """Training assets (datasets, checkpoints) of [[recovery.assets]]: manifests, backups, restore-and-verify."""


def _asset(name: str) -> Any:
    config = state().config
    found = next((a for a in config.recovery.assets if a.name == name), None)
    if found is None:
        known = ", ".join(a.name for a in config.recovery.assets) or "none"
        raise InvalidInputError(f"no asset {name!r} in [[recovery.assets]] (known: {known})", where="NAME",
                                hint="add it to goldwatch.toml, or pass --config")
    return found


def _scratch() -> Path:
    config = state().config
    return Path(config.recovery.scratch or Path(config.registry.root) / "restore-scratch")


@asset.command("register")
@click.argument("name")
@json_option
@guarded
def asset_register(name: str, as_json: bool) -> None:
    """Write the live asset's manifest (every file's digest; tensors' fingerprints for checkpoints) to the asset's
    configured manifest path."""
    from goldwatch.watchdog.recovery.assets import register

    manifest = register(_asset(name))
    if as_json:
        emit_json({"asset": name, "manifest": str(manifest)})
        return
    click.echo(f"goldwatch asset: {name}: manifest written to {manifest}")


@asset.command("backup")
@click.argument("name")
@json_option
@guarded
def asset_backup(name: str, as_json: bool) -> None:
    """Snapshot the asset into its backups folder (the copy is verified before the snapshot appears)."""
    from goldwatch.watchdog.recovery.assets import take_backup

    backup = take_backup(_asset(name))
    if as_json:
        emit_json(backup)
        return
    click.echo(f"goldwatch asset: {name}: snapshot {backup.snapshot} ({backup.files} file(s), {backup.size_bytes} "
               f"bytes) in {backup.path}")


@asset.command("verify")
@click.argument("names", nargs=-1)
@json_option
@guarded
def asset_verify(names: tuple[str, ...], as_json: bool) -> None:
    """Restore every asset's snapshots (newest first) into a scratch folder and check every digest, until one
    verifies; report the RPO. Exit 1 if a snapshot fails, the RPO is exceeded, or the live asset fails."""
    from goldwatch.watchdog.recovery.assets import check_asset

    config = state().config
    chosen = [_asset(n) for n in names] if names else list(config.recovery.assets)
    if not chosen:
        raise InvalidInputError("no [[recovery.assets]] in the config", where="goldwatch.toml",
                                hint="add one (name, path, backups, rpo_seconds)")
    statuses = []
    with progress.task("restore-and-verify", total=len(chosen), unit="assets"):
        for a in chosen:
            with progress.isolated():  # its bytes are not assets
                statuses.append(check_asset(a, scratch=_scratch()))
            progress.advance(1)
    ok = all(not s.failed and s.rpo_met and (s.live is None or s.live.ok) for s in statuses)
    if as_json:
        emit_json([{"asset": s.asset, "ok": not s.failed and s.rpo_met, "rpo_s": s.rpo_s,
                    "rpo_target_s": s.rpo_target_s, "checks": s.to_checks()} for s in statuses])
    else:
        for s in statuses:
            click.echo(f"{s.asset}:")
            for c in s.to_checks():
                click.echo(f"  {c.status.upper():5} {c.name}: {c.summary}")
    finish(ok)


@asset.command("list")
@click.argument("name")
@json_option
@guarded
def asset_list(name: str, as_json: bool) -> None:
    """The asset's snapshots, newest first (a folder whose metadata cannot be read is listed as broken)."""
    from goldwatch.watchdog.recovery.assets import list_backups

    backups, broken = list_backups(_asset(name))
    if as_json:
        emit_json({"backups": backups, "broken": broken})
        return
    now = time.time()
    for b in backups:
        click.echo(f"{b.snapshot}  taken {b.taken_at_iso} ({now - b.taken_at:.0f} s ago)  {b.files} file(s), "
                   f"{b.size_bytes} bytes")
    for v in broken:
        click.echo(f"{v.snapshot}  BROKEN: {'; '.join(v.problems)}")


@asset.command("restore")
@click.argument("name")
@click.option("--out", "dest", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="An empty (or new) folder to restore into.")
@click.option("--snapshot", default=None, help="The snapshot to restore (default: the newest that verifies).")
@json_option
@guarded
def asset_restore(name: str, dest: Path, snapshot: str | None, as_json: bool) -> None:
    """Restore a snapshot (default: the newest one that restores and verifies) into --out and verify every digest
    there. Exit 1 if it does not verify (the files stay for inspection)."""
    from goldwatch.integrity import ArtifactManifest, verify_artifact
    from goldwatch.watchdog.recovery.assets import check_asset, list_backups, restore_backup

    a = _asset(name)
    if snapshot is None:
        status = check_asset(a, scratch=_scratch())
        if status.restore_point is None:
            if as_json:
                emit_json({"asset": name, "snapshot": None, "restored": None, "ok": False,
                           "problems": ["no snapshot restores and verifies"]})
            click.echo(f"goldwatch asset: {name}: no snapshot restores and verifies", err=True)
            finish(False)
        assert status.restore_point is not None
        snapshot = status.restore_point.snapshot
    backups, _broken = list_backups(a)
    chosen = next((b for b in backups if b.snapshot == snapshot), None)
    if chosen is None:
        raise InvalidInputError(f"no snapshot {snapshot!r} of {name}", where=str(a.backups),
                                hint=f"goldwatch asset list {name} shows them")
    restored = restore_backup(a, chosen, dest)
    report = verify_artifact(restored, ArtifactManifest.load(chosen.manifest))
    if as_json:
        emit_json({"asset": name, "snapshot": chosen.snapshot, "taken_at": chosen.taken_at_iso,
                   "restored": str(restored), "ok": report.ok,
                   "problems": [m.message for m in report.mismatches]})
    elif report.ok:
        click.echo(f"goldwatch asset: {name}: {chosen.snapshot} (taken {chosen.taken_at_iso}) restored to {restored}; "
                   "every digest matches")
    else:
        problems = "; ".join(m.message for m in report.mismatches[:3])
        click.echo(f"goldwatch asset: {name}: {chosen.snapshot} restored to {restored} but does NOT verify: "
                   f"{problems}", err=True)
    finish(report.ok)
