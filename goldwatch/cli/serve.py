"""``goldwatch serve`` (the sidecar) and ``goldwatch status`` (what a running sidecar sees)."""

from __future__ import annotations

import time
from typing import Any

import click

from goldwatch.cli._common import emit_json, finish, guarded, json_option, state


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="goldwatch.toml with [serve] and [[serve.watch]] (same as the global --config).")
@click.option("--verify-first", is_flag=True,
              help="Verify every served model's files with SHA-256 before anything else (rolling a corrupted one "
                   "back); /startupz answers 200 only once they verify: a Kubernetes startupProbe.")
@click.option("--host", default=None, help="Bind address (default: serve.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: serve.port; 0: any free port).")
@guarded
def serve(config_path: str | None, verify_first: bool, host: str | None, port: int | None) -> None:
    """Watch the models of [[serve.watch]] and heal them: check, roll back, page, resolve. Runs until SIGTERM.

    Exit 2 (before anything starts) on any configuration problem, all of them listed at once.
    """
    from goldwatch._optional import require

    app = state()
    if config_path is not None:
        app.config_path = config_path
    config = app.config
    require("starlette", purpose="the sidecar's HTTP API")
    require("uvicorn", purpose="the sidecar's HTTP API")
    from goldwatch.watchdog.sidecar.runner import bind, run_service
    from goldwatch.watchdog.sidecar.service import SidecarService

    sock = bind(host or config.serve.host, config.serve.port if port is None else port)
    try:
        service = SidecarService(config, verify_first=verify_first)
    except BaseException:
        sock.close()
        raise
    run_service(service, sock, on_ready=lambda url: click.echo(f"goldwatch serve: listening on {url}", err=True))


def _ago(t: float | None, now: float) -> str:
    if t is None:
        return "never"
    delta = now - t
    return f"{delta:.0f} s ago" if delta >= 0 else f"in {-delta:.0f} s"


def _print_status(data: dict[str, Any], url: str) -> None:
    now = float(data.get("now") or time.time())
    click.echo(f"goldwatch sidecar at {url} ({'ready' if data.get('ready') else 'NOT READY'}; "
               f"goldwatch {data.get('goldwatch_version')})")
    for m in data.get("models", []):
        flags = []
        if m.get("paused"):
            flags.append(f"PAUSED until {time.strftime('%H:%M:%S', time.localtime(m['paused']['until']))}: "
                         f"{m['paused'].get('reason')}")
        if m.get("stopped"):
            flags.append(f"NOT ACTING (flap guard): {m['stopped'].get('reason')}")
        if m.get("mode") == "observe":
            flags.append("observe mode")
        if m.get("route") not in (None, "primary"):
            since = m.get("degraded_since")
            when = (f" since {time.strftime('%H:%M:%S', time.localtime(since))} ({now - since:.0f} s)"
                    if since else "")
            flags.append(f"DEGRADED: traffic on the {str(m['route']).replace('_', ' ')}{when}")
        click.echo("")
        click.echo(f"{m['name']}: {'healthy' if m['healthy'] else 'UNHEALTHY'}, serving "
                   f"{m.get('served_version') or '(no registry version)'}"
                   + (f"  [{'; '.join(flags)}]" if flags else ""))
        for kind, c in (m.get("checks") or {}).items():
            status = (c.get("status") or "not run").upper() if c.get("status") in ("fail", "error") else \
                (c.get("status") or "not run")
            click.echo(f"  {kind:<19} {status:<8} {_ago(c.get('last_run_at'), now):<12} "
                       f"next {_ago(c.get('next_run_at'), now):<10} {(c.get('summary') or '')[:90]}")
        ready = m.get("rollback_ready")
        click.echo(f"  rollback target: {'verified' if ready else ('none verified' if ready is False else 'n/a')}")
        for inc in m.get("incidents") or []:
            click.echo(f"  incident #{inc['id']} {inc['severity']} {inc['check_class']}: {inc['summary'][:120]}")


@click.command()
@click.option("--url", default=None, help="The sidecar's API (default: http://serve.host:serve.port).")
@json_option
@guarded
def status(url: str | None, as_json: bool) -> None:
    """Print what a running sidecar sees. Exit 0 when every model is healthy, 1 when one is not, 2 unreachable."""
    import httpx

    from goldwatch.errors import ServerUnreachableError

    if url is None:
        serve_cfg = state().config.serve
        host = "127.0.0.1" if serve_cfg.host in ("0.0.0.0", "::") else serve_cfg.host
        url = f"http://{host}:{serve_cfg.port}"
    url = url.rstrip("/")
    try:
        resp = httpx.get(url + "/v1/status", timeout=10.0, trust_env=False)
        data = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ServerUnreachableError(f"cannot read the sidecar's status ({exc})", where=url + "/v1/status",
                                     hint="is `goldwatch serve` running there? pass --url") from None
    if resp.status_code != 200 or not isinstance(data, dict):
        raise ServerUnreachableError(f"the sidecar answered HTTP {resp.status_code}", where=url + "/v1/status")
    if as_json:
        emit_json(data)
    else:
        _print_status(data, url)
    finish(all(m.get("healthy") for m in data.get("models", [])))
