"""``goldwatch doctor``: what goldwatch can do on this machine, and why not (see :mod:`goldwatch.doctor`)."""

from __future__ import annotations

import click

from goldwatch.cli._common import emit_json, finish, guarded, json_option, state

__all__ = ["doctor"]

_MARK = {"pass": "ok", "skip": "--", "fail": "FAIL", "error": "ERROR"}


@click.command("doctor")
@json_option
@guarded
def doctor(as_json: bool) -> None:
    """Check this machine and setup: versions and extras, CPU, CUDA and the Triton kernel, ONNX Runtime providers,
    MLServer, Chromium, the config file, the registry, the alert path (nothing is sent), the sidecar, the
    references of live drift and the disaster-recovery setup.

    Exit 0 when nothing is broken (a missing extra or GPU is reported, not a failure), 1 when something present
    or configured is broken, 2 on a usage error. Changes nothing.
    """
    import logging

    from goldwatch.doctor import diagnose

    logging.getLogger("goldwatch").debug("doctor: config %s", state().config_path)
    report = diagnose(state().config_path)
    if as_json:
        emit_json({"ok": report.ok, "counts": report.counts(), "duration_s": round(report.duration_s, 3),
                   "checks": report.checks})
    else:
        width = max(len(c.name) for c in report.checks)
        for c in report.checks:
            click.echo(f"{_MARK[c.status]:5} {c.name:{width}}  {c.summary}")
        counts = report.counts()
        click.echo(f"\n{counts['pass']} ok, {counts['skip']} not available here, "
                   f"{counts['fail'] + counts['error']} problem(s)")
    finish(report.ok)
